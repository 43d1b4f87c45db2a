"""The main job: the whole loop on one machine, on the real 2013 flights.

data → Feast → train a champion → export → serve → fine-tune a challenger on a newer
window → canary it behind the router on replayed traffic with delayed ground truth →
automated analysis promotes or rolls back → an HTML report with the pictures.

Each stage is a call into the library; this module only sequences them and records what
happened (the same functions back the KFP components and the CLI).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from e2eai.config import Settings

if TYPE_CHECKING:
    from e2eai.serving.canary_analysis import CanaryPolicy

Progress = Callable[[str], None]


@dataclass
class LoopRecord:
    """What the loop did, step by step, with the numbers a reader needs."""

    run_dir: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    canary: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = ""

    def step(self, name: str, started: float, **details: Any) -> None:
        self.steps.append({"step": name, "seconds": round(time.perf_counter() - started, 2),
                           **details})  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "outcome": self.outcome,
            "data": self.data,
            "models": self.models,
            "canary_decisions": [
                {k: d[k] for k in ("action", "weight_before", "weight_after", "reason")}
                for d in self.canary
            ],
            "steps": self.steps,
            "report": str(self.run_dir / "report.html"),
        }


def _with_training_window(settings: Settings, start: date, end: date) -> Settings:
    training = settings.training.model_copy(update={"train_start": start, "train_end": end})
    return settings.model_copy(update={"training": training})


@dataclass(frozen=True)
class TrainingOutcome:
    """What one training run (data → features → train → gates → ONNX → register) gave."""

    passed: bool
    gates: list[str]
    version: int | None  # registered version; None when the gates failed
    reports: dict[str, str] = field(default_factory=dict)


TrainFn = Callable[[Settings, int | None], TrainingOutcome]
"""How the loop trains: in this process (default) or through the KFP pipeline."""


def train_in_process(settings: Settings, warm_start_from: int | None) -> TrainingOutcome:
    """The stages as plain library calls, in this process."""
    from e2eai.data.prepare import prepare_data
    from e2eai.export.registered import export_registered
    from e2eai.features.build import build_feature_tables
    from e2eai.features.store import apply_repo, default_materialize_window, materialize
    from e2eai.registry import ModelRegistry
    from e2eai.training import run_training
    from e2eai.training.registration import register_candidate

    prepare_data(settings)
    build_feature_tables(settings)
    apply_repo(settings)
    materialize(settings, *default_materialize_window(settings))
    result = run_training(settings, warm_start_from=warm_start_from)
    gates = [g.message for g in result.gates]
    if not result.passed:
        return TrainingOutcome(False, gates, None)
    with ModelRegistry.from_settings(settings) as registry:
        version = register_candidate(settings, result, registry).version
        export_registered(settings, version, registry)
    return TrainingOutcome(True, gates, version)


def _data_summary(settings: Settings) -> dict[str, Any]:
    """Row accounting of the prepared data (whichever way the data step ran)."""
    from e2eai.data.prepare import PREPARED

    quality = settings.data_dir / PREPARED / "quality.json"
    if not quality.is_file():
        return {}
    report = json.loads(quality.read_text())
    keys = ("rows_in", "rows_accepted", "rows_quarantined", "rows_excluded", "snapshot")
    return {**{k: report[k] for k in keys}, "quality_report": str(quality.with_suffix(".html"))}


def _model_summary(settings: Settings, version: int, run_dir: Path) -> dict[str, Any]:
    """Metrics, windows, plots and the holdout of a registered version, for the report."""
    from e2eai.registry import ModelRegistry

    work = run_dir / f"v{version}"
    with ModelRegistry.from_settings(settings) as registry:
        record = registry.get(version)
        plots = {
            name: str(registry.fetch_artifact(version, name, work))
            for name in record.artifacts
            if name.endswith(".png")
        }
        holdout = registry.fetch_artifact(version, "holdout.parquet", work)
    holdout_metrics = record.metrics.get("holdout", {})
    return {
        "version": version,
        "family": record.family,
        "stage": str(record.stage),
        "metrics": {
            name: {k: m.get(k) for k in ("roc_auc", "pr_auc", "log_loss", "brier")}
            for name, m in holdout_metrics.items()
        },
        "training_window": record.lineage["training_window"],
        "holdout_window": record.metrics.get("holdout_window"),
        "holdout_path": str(holdout),
        "plots": plots,
    }


def _replay(
    settings: Settings,
    policy: CanaryPolicy,
    rows: pd.DataFrame,
    record: LoopRecord,
    progress: Progress,
) -> None:
    """Send flights through the router one by one, feed labels back, let analysis decide."""
    import httpx

    from e2eai.schema import FLIGHT_ID, LABEL
    from e2eai.serving.client import v2_request
    from e2eai.serving.local import LocalServing

    serving = LocalServing(settings, policy=policy)
    url = f"{serving.state().endpoint}/v2/models/{settings.serving.model_name}/infer"
    windows = settings.features.windows_hours
    batch = 250
    with httpx.Client(timeout=10.0) as client:
        for offset in range(0, len(rows), batch):
            chunk = rows.iloc[offset : offset + batch]
            feedback = []
            for i in range(len(chunk)):
                one = chunk.iloc[i : i + 1]
                request_id = str(one[FLIGHT_ID].iloc[0])
                response = client.post(
                    url, json=v2_request(one, windows), headers={"x-request-id": request_id}
                )
                response.raise_for_status()
                feedback.append({"request_id": request_id, "labels": [int(one[LABEL].iloc[0])]})
            # Ground truth arrives after the flights land.
            matched = serving.feedback(feedback)["matched"]
            if matched != len(feedback):
                raise RuntimeError(f"router matched {matched} of {len(feedback)} labels")
            decision = serving.analyze(apply=True)
            record.canary.append(decision.model_dump(mode="json"))
            progress(
                f"replayed {offset + len(chunk)}/{len(rows)} flights: {decision.action} "
                f"({decision.weight_before}% → {decision.weight_after}%)"
            )
            if decision.action in ("promote", "rollback"):
                verb = "promoted" if decision.action == "promote" else "rolled back"
                record.outcome = f"challenger {verb}: {decision.reason}"
                return
    record.outcome = "traffic ran out before the analysis could decide (canary kept)"


def run_loop(
    settings: Settings, progress: Progress = print, train: TrainFn = train_in_process
) -> LoopRecord:
    """Run the whole loop and write its report; returns the record."""
    from e2eai.registry import ModelRegistry
    from e2eai.serving.canary_analysis import CanaryPolicy
    from e2eai.serving.local import LocalServing, ModelSource

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = LoopRecord(run_dir=settings.home / "loop" / stamp)
    record.run_dir.mkdir(parents=True, exist_ok=True)
    t = settings.training

    started = time.perf_counter()
    progress(
        f"1/4 champion: data → Feast → train {t.family} on {t.train_start}..{t.train_end} "
        "→ gates → ONNX → register"
    )
    champion = train(settings, None)
    record.data = _data_summary(settings)
    record.step("champion", started, version=champion.version, gates=champion.gates)
    if champion.version is None:
        record.outcome = "champion failed its gates: nothing deployed — " + "; ".join(
            champion.gates
        )
        write_report(record)
        return record
    record.models["champion"] = _model_summary(settings, champion.version, record.run_dir)
    with ModelRegistry.from_settings(settings) as registry:
        if str(registry.get(champion.version).stage) != "champion":
            registry.transition(champion.version, "champion", "first model: passed every gate")

    # The loop feeds ground truth back, so the canary is judged on served accuracy too.
    policy = CanaryPolicy.from_settings(settings).model_copy(update={"require_labels": True})
    serving = LocalServing(settings, policy=policy)
    try:
        started = time.perf_counter()
        progress(f"2/4 serve champion v{champion.version} on loopback (KServe ModelServer)")
        serving.start(ModelSource.from_registry(champion.version))
        record.step("serve", started, endpoint=serving.state().endpoint)

        started = time.perf_counter()
        newer_start = t.train_end + timedelta(days=t.holdout_days + 1)
        newer_end = newer_start + (t.train_end - t.train_start) // 2
        progress(f"3/4 challenger: fine-tune v{champion.version} on {newer_start}..{newer_end}")
        challenger = train(
            _with_training_window(settings, newer_start, newer_end), champion.version
        )
        record.step("challenger", started, version=challenger.version, gates=challenger.gates)
        if challenger.version is None:
            record.outcome = "challenger failed its gates: not deployed — " + "; ".join(
                challenger.gates
            )
        else:
            record.models["challenger"] = _model_summary(
                settings, challenger.version, record.run_dir
            )
            if serving.state().canary is None:  # the pipeline's deploy step may have done it
                serving.deploy(ModelSource.from_registry(challenger.version), canary_percent=10)
            started = time.perf_counter()
            replay = pd.read_parquet(record.models["challenger"]["holdout_path"])
            window = record.models["challenger"]["holdout_window"]
            progress(f"4/4 canary: replay {len(replay)} flights of {window} with feedback")
            _replay(settings, policy, replay, record, progress)
            record.step("canary", started, decisions=len(record.canary))
        record.data["serving"] = serving.status()
    finally:
        serving.stop()
    with ModelRegistry.from_settings(settings) as registry:  # stages after the decisions
        for model in record.models.values():
            model["stage"] = str(registry.get(model["version"]).stage)
    write_report(record)
    return record


def _decision_plot(decisions: list[dict[str, Any]], path: Path) -> Path | None:
    if not decisions:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
    steps = range(1, len(decisions) + 1)
    left.step(steps, [d["weight_after"] for d in decisions], where="post", color="#4c72b0")
    for i, d in zip(steps, decisions, strict=True):
        if d["action"] in ("promote", "rollback"):
            left.annotate(d["action"], (i, d["weight_after"]), color="#c44e52")
    left.set_xlabel("analysis round")
    left.set_ylabel("canary traffic %")
    left.set_title("Canary weight after each analysis")
    for slot, color in (("stable", "#4c72b0"), ("canary", "#dd8452")):
        values = [
            next((e[slot] for e in d["evidence"] if e["metric"] == "roc_auc"), None)
            for d in decisions
        ]
        right.plot(list(steps), values, marker="o", color=color, label=slot)
    right.set_title("Served ROC-AUC on labelled traffic")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(record: LoopRecord) -> Path:
    """The run's HTML report (and summary.json) in its run directory."""
    import base64
    import html

    def img(path: str | Path | None) -> str:
        if not path or not Path(path).is_file():
            return ""
        data = base64.b64encode(Path(path).read_bytes()).decode()
        return f'<img style="max-width:48%" src="data:image/png;base64,{data}">'

    summary = record.summary()
    (record.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    rows = []
    for role, model in record.models.items():
        for name, metrics in model["metrics"].items():
            cells = ("" if v is None else f"{v:.4f}" for v in metrics.values())
            values = "".join(f"<td>{c}</td>" for c in cells)
            rows.append(
                f"<tr><td>{role} v{model['version']} ({model.get('stage', '')})</td>"
                f"<td>{name}</td>{values}</tr>"
            )
    metrics_table = (
        "<table><tr><th>model</th><th>scored</th><th>ROC-AUC</th><th>PR-AUC</th>"
        f"<th>log-loss</th><th>Brier</th></tr>{''.join(rows)}</table>"
    )
    plots = "".join(
        f"<h3>{role} v{m['version']} ({html.escape(str(m['holdout_window']))})</h3>"
        + "".join(img(p) for p in m["plots"].values())
        for role, m in record.models.items()
    )
    decision_png = _decision_plot(record.canary, record.run_dir / "canary.png")
    decisions = "".join(
        f"<li><b>{html.escape(d['action'])}</b> {d['weight_before']}% → {d['weight_after']}%: "
        f"{html.escape(d['reason'])}</li>"
        for d in record.canary
    )
    steps = "".join(
        f"<tr><td>{html.escape(s['step'])}</td><td>{s['seconds']}</td></tr>" for s in record.steps
    )
    quality = record.data.get("quality_report", "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>e2eai run</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:75em}}
td,th{{padding:.2em .7em;border-bottom:1px solid #ddd;text-align:left}}
table{{border-collapse:collapse}}</style></head><body>
<h1>e2eai loop — {html.escape(record.run_dir.name)}</h1>
<p><b>Outcome:</b> {html.escape(record.outcome)}</p>
<h2>Data</h2><p>{record.data.get("rows_in", 0):,} flights in,
{record.data.get("rows_accepted", 0):,} accepted, {record.data.get("rows_quarantined", 0):,}
quarantined, {record.data.get("rows_excluded", 0):,} excluded by rule.
Quality report: <code>{html.escape(str(quality))}</code></p>
<h2>Models (time-based holdout)</h2>{metrics_table}{plots}
<h2>Canary</h2>{img(decision_png)}<ol>{decisions}</ol>
<h2>Steps</h2><table><tr><th>step</th><th>seconds</th></tr>{steps}</table>
</body></html>"""
    path = record.run_dir / "report.html"
    path.write_text(page)
    return path
