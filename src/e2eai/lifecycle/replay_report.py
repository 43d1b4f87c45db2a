"""The replay's results: weekly quality of the closed loop against its baselines, the
retrains and canary decisions on the timeline, drift per input per week, latency and label
coverage — ``summary.json`` and a self-contained ``report.html`` in the run directory."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e2eai import jsonable
from e2eai.config import Settings
from e2eai.lifecycle.canary_evidence import plot_confidence_sequences
from e2eai.reporting import figure_png, png_data_uri, render

if TYPE_CHECKING:
    from e2eai.lifecycle.baselines import ScheduledBaseline
    from e2eai.lifecycle.closed_loop import ReplayRecord
    from e2eai.tasks import Task

MODELS = ("closed_loop", "static", "scheduled")


def _auc(labels: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(labels) == 0 or labels.min() == labels.max():
        return None
    return round(float(roc_auc_score(labels, p)), 4)


def weekly_table(
    settings: Settings, log: list[Any], baselines: dict[str, np.ndarray], windows: list[dict]
) -> list[dict[str, Any]]:
    """One row per monitoring window of the replay."""
    from e2eai.monitoring.windows import window_name, window_of

    names = [window_name(window_of(p.event_time, settings.monitoring)) for p in log]
    frame = pd.DataFrame(
        {
            "window": names,
            "label": [np.nan if p.label is None else p.label for p in log],
            "closed_loop": [p.probability for p in log],
            "static": baselines["static"],
            "scheduled": baselines["scheduled"],
            "version": [p.model_version for p in log],
            "slot": [p.slot for p in log],
        }
    )
    monitored = {w["window"]: w for w in windows}
    rows = []
    for name, week in frame.groupby("window", sort=True):
        labelled = week[week["label"].notna()]
        y = labelled["label"].to_numpy(int)
        stable = Counter(week.loc[week["slot"] == "stable", "version"]).most_common(1)
        drift = (monitored.get(name) or {}).get("drift") or {}
        rows.append(
            {
                "week_start": name.split("_")[0],
                "window": name,
                "rows": len(week),
                "labelled": len(labelled),
                **{f"auc_{m}": _auc(y, labelled[m].to_numpy()) for m in MODELS},
                "drift_share": drift.get("share"),
                "champion_version": stable[0][0] if stable else None,
                "canary_rows": int((week["slot"] == "canary").sum()),
                "report": (monitored.get(name) or {}).get("report"),
            }
        )
    return rows


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return round(float(np.mean(values)), 4) if values else None


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None}
    a = np.asarray(values)
    return {
        "count": len(a),
        **{f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)},
    }


def write_replay_report(
    settings: Settings,
    task: Task,
    record: ReplayRecord,
    scheduled: ScheduledBaseline,
    seconds: float,
) -> dict[str, Any]:
    """Score the baselines on the logged traffic, write summary.json and report.html."""
    from e2eai.app.store import AppStore
    from e2eai.lifecycle.baselines import baseline_probabilities
    from e2eai.lifecycle.baselines import summary as scheduled_summary
    from e2eai.lifecycle.footprint import peak_rss_by_process
    from e2eai.monitoring.monitor import reports_dir

    memory = record.memory.summary() if record.memory else {"process_tree": 0.0}
    memory |= peak_rss_by_process()
    memory["process_tree"] = max(memory.values())  # a sample can miss a short-lived peak
    with AppStore.from_settings(settings) as store:
        span = store.event_time_range()
        # the log's end is exclusive: one microsecond past the last event keeps it
        log = store.prediction_log(span[0], span[1] + timedelta(microseconds=1)) if span else []
        audit = store.list_audit(500)
    baselines = baseline_probabilities(settings, task, log, scheduled, record.run_dir / "models")
    weekly = weekly_table(settings, log, baselines, record.windows)
    passed = [m for m in scheduled.models if m.passed]
    totals = {
        "mean_weekly_auc": {m: _mean(weekly, f"auc_{m}") for m in MODELS},
        "retrains": {
            "closed_loop": len(record.retrains),
            "closed_loop_promoted": sum(r.outcome == "promoted" for r in record.retrains),
            "scheduled": len(scheduled.models),
            "scheduled_deployed": len(passed),
        },
    }
    summary = {
        "run_dir": str(record.run_dir),
        "replay": {"start": record.start, "end": record.end},
        "champion": record.champion,
        "hours": record.hours,
        "requests": record.requests,
        "predictions": record.predictions,
        "feedback": record.feedback,
        "label_coverage": round(record.feedback / record.predictions, 4)
        if record.predictions
        else None,
        "feature_rows_written": record.feature_rows_written,
        "weekly": weekly,
        "totals": totals,
        "retrains": [
            {
                "at": r.at,
                "reason": r.reason,
                "window": r.window,
                "version": r.version,
                "outcome": r.outcome,
                "training_window": r.training_window,
                "seconds": r.seconds,
            }
            for r in record.retrains
        ],
        "decisions": record.decisions,
        "canary_decisions": [
            {k: d.get(k) for k in ("clock", "action", "stable_version", "canary_version", "reason")}
            | {"weight": [d["weight_before"], d["weight_after"]]}
            for d in record.canary
        ],
        "canary_analyses": record.canary_analyses,
        "scheduled": scheduled_summary(scheduled),
        "latency_ms": {
            "single": _percentiles(record.single_latency_ms),
            "batch": _percentiles(record.batch_latency_ms),
            "batch_rows_mean": round(float(np.mean(record.batch_rows)), 1)
            if record.batch_rows
            else None,
        },
        "monitoring_reports": str(reports_dir(settings)),
        "audit_entries": len(audit),
        "steps_seconds": {k: round(v, 1) for k, v in record.steps.items()},
        "report": str(record.report_path),
        "seconds": round(seconds, 1),
        # what the machine held at the worst moment: every process of the run at once
        "peak_rss_mb": memory["process_tree"],
        "peak_rss_mb_by": memory,
    }
    (record.run_dir / "summary.json").write_text(jsonable.dumps(summary, indent=2))
    plots = {
        "auc": png_data_uri(_plot_auc(weekly, summary)),
        "drift": png_data_uri(_plot_drift(record.windows)),
        "coverage": png_data_uri(_plot_coverage(weekly)),
        "canary_evidence": png_data_uri(plot_confidence_sequences(record.canary_looks)),
    }
    reports = reports_dir(settings)
    for row in weekly:  # relative: the run's folder can move (or be served) as a whole
        if row["report"]:
            row["report_href"] = os.path.relpath(reports / row["report"], record.run_dir)
    html = render("replay_report.html.j2", s=summary, plots=plots)
    record.report_path.write_text(html)
    summary["weekly"] = [{k: v for k, v in r.items() if k != "report_href"} for r in weekly]
    return json.loads(jsonable.dumps(summary))


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _plot_auc(weekly: list[dict[str, Any]], summary: dict[str, Any]) -> bytes | None:
    if not weekly:
        return None
    fig, ax = _figure(11, 3.8)
    weeks = pd.to_datetime([r["week_start"] for r in weekly])
    colors = {"closed_loop": "#4c72b0", "static": "#8c8c8c", "scheduled": "#dd8452"}
    for m in MODELS:
        values = [np.nan if r[f"auc_{m}"] is None else r[f"auc_{m}"] for r in weekly]
        ax.plot(weeks, values, marker="o", ms=3, color=colors[m], label=m.replace("_", " "))
    for r in summary["retrains"]:
        at = pd.Timestamp(r["at"])
        ax.axvline(at, color="#c44e52", lw=1, ls="--")
        ax.annotate(f"{r['reason']}: {r['outcome']}", (at, ax.get_ylim()[1]), rotation=90,
                    va="top", ha="right", fontsize=7, color="#c44e52")  # fmt: skip
    for s in summary["scheduled"]:
        ax.axvline(pd.Timestamp(s["at"]), color="#dd8452", lw=0.6, ls=":")
    ax.set_ylabel("ROC-AUC (labelled traffic)")
    ax.set_title("Weekly ROC-AUC: closed loop vs static vs monthly retrain")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def _plot_drift(windows: list[dict[str, Any]]) -> bytes | None:
    checked = [w for w in windows if w.get("drift")]
    if not checked:
        return None
    names = [f["name"] for f in checked[0]["drift"]["features"]]
    grid = np.full((len(names), len(checked)), np.nan)
    for j, w in enumerate(checked):
        by_name = {f["name"]: f for f in w["drift"]["features"]}
        for i, n in enumerate(names):
            distance = (by_name.get(n) or {}).get("distance")
            grid[i, j] = np.nan if distance is None else distance
    fig, ax = _figure(11, max(3.5, 0.18 * len(names) + 1))
    image = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0, vmax=max(0.3, np.nanmax(grid)))
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_xticks(range(len(checked)), [w["start"][:10] for w in checked], rotation=90, fontsize=6)
    for j, w in enumerate(checked):
        drifted = {f["name"] for f in w["drift"]["features"] if f.get("drifted")}
        for i, n in enumerate(names):
            if n in drifted:
                ax.text(j, i, "•", ha="center", va="center", fontsize=6, color="#1f77b4")
    fig.colorbar(image, ax=ax, label="distance to the reference (• drifted)")
    ax.set_title("Input drift per week")
    fig.tight_layout()
    return figure_png(fig)


def _plot_coverage(weekly: list[dict[str, Any]]) -> bytes | None:
    if not weekly:
        return None
    fig, ax = _figure(11, 2.6)
    weeks = pd.to_datetime([r["week_start"] for r in weekly])
    ax.bar(weeks, [r["rows"] for r in weekly], width=5, color="#c7d3e6", label="predictions")
    ax.bar(weeks, [r["labelled"] for r in weekly], width=3, color="#4c72b0", label="labelled")
    ax.bar(weeks, [r["canary_rows"] for r in weekly], width=1.5, color="#dd8452", label="canary")
    ax.set_title("Traffic, label coverage and canary share per week")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)
