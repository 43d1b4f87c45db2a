"""One monitoring pass over the app's prediction log: a report per complete window.

For each window (:mod:`e2eai.monitoring.windows`) not reported yet: the predictions whose
event falls in it, their model inputs against the reference of the version that answered
most of them (:mod:`e2eai.monitoring.reference`) — data drift of the inputs, weighted by
importance, and drift of the predictions (:mod:`e2eai.monitoring.drift`, Evidently) — and,
for the predictions whose outcome arrived, classification quality
(:mod:`e2eai.monitoring.quality`) and the sequential tracking of each version's risk since
it was deployed (:mod:`e2eai.monitoring.risk`, :func:`track_risk`). Each window writes
``<name>.html`` (this page), ``<name>-drift.html`` (Evidently's) and ``<name>.json`` under
``<home>/monitoring/reports`` and one line of ``<home>/monitoring/windows.jsonl``; the last
window reported is kept in ``<home>/monitoring/state.json``, so the next pass (a CronJob on
a cluster) starts after it, and each version's risk tracker in ``<home>/monitoring/risk``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e2eai.jsonable import to_jsonable
from e2eai.monitoring.windows import Window, complete_windows, window_name

if TYPE_CHECKING:
    from e2eai.app.store import AppStore, LoggedPrediction
    from e2eai.config import Settings
    from e2eai.tasks import Task

PREDICTION = "prediction"


def monitoring_dir(settings: Settings) -> Path:
    return settings.monitoring.directory or settings.home / "monitoring"


def reports_dir(settings: Settings) -> Path:
    return monitoring_dir(settings) / "reports"


@dataclass
class MonitorPass:
    """What one pass reported: its windows' summaries, and the time it took."""

    windows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    logged: tuple[str, str] | None = None  # first, last event time in the log

    def summary(self) -> dict[str, Any]:
        return {"windows": self.windows, "seconds": round(self.seconds, 3), "logged": self.logged}


def read_state(settings: Settings) -> datetime | None:
    path = monitoring_dir(settings) / "state.json"
    if not path.is_file():
        return None
    return datetime.fromisoformat(json.loads(path.read_text())["reported_until"])


def window_summaries(settings: Settings) -> list[dict[str, Any]]:
    """Every window reported so far, oldest first (``windows.jsonl``; a window reported
    again after a pass stopped between its line and its state keeps its last line)."""
    path = monitoring_dir(settings) / "windows.jsonl"
    if not path.is_file():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    latest = {line["window"]: line for line in lines}
    return sorted(latest.values(), key=lambda line: line["start"])


def monitor(settings: Settings, store: AppStore | None = None) -> MonitorPass:
    """Report every complete window logged since the last pass."""
    from e2eai.app.store import AppStore
    from e2eai.tasks import load_task

    started = time.perf_counter()
    task = load_task(settings)
    own = store is None
    store = store or AppStore.from_settings(settings)
    result = MonitorPass()
    try:
        logged = store.event_time_range()
        if logged is not None:
            result.logged = (logged[0].isoformat(), logged[1].isoformat())
            after = read_state(settings)
            for window in complete_windows(*logged, after, settings.monitoring):
                log = store.prediction_log(*window)
                if not log:  # no traffic then: nothing to report, but the window is done
                    _save_state(settings, window)
                    continue
                summary = monitor_window(settings, task, window, log)
                _record(settings, window, summary)
                result.windows.append(summary)
    finally:
        if own:
            store.close()
    result.seconds = time.perf_counter() - started
    return result


def monitor_window(
    settings: Settings, task: Task, window: Window, log: list[LoggedPrediction]
) -> dict[str, Any]:
    """The report of one window's predictions (written to disk) and its summary."""
    from e2eai.reporting import render

    m = settings.monitoring
    name = window_name(window)
    out = reports_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    versions = Counter(p.model_version for p in log)
    summary: dict[str, Any] = {
        "window": name,
        "start": window[0].isoformat(),
        "end": window[1].isoformat(),
        "rows": len(log),
        "labelled": sum(p.label is not None for p in log),
        "versions": dict(versions.most_common()),
        "threshold": m.threshold,
        "min_rows": m.min_rows,
        "min_labelled": m.min_labelled,
        "quality": None,
        "drift": None,
        "prediction_drift": None,
        "reference_version": None,
        "reference_source": None,
        "reference_rows": 0,
        "holdout_roc_auc": None,
        "risk": None,
        "unmeasured_inputs": [],
        "report": f"{name}.html",
        "drift_report": None,
    }
    if task.modality == "tabular":
        _tabular_figures(settings, task, name, log, summary)
    else:
        _class_figures(settings, task, name, log, summary)
    summary = to_jsonable(summary)
    (out / f"{name}.json").write_text(json.dumps(summary, indent=1))
    (out / f"{name}.html").write_text(render("monitoring_window.html.j2", w=summary))
    return summary


def _tabular_figures(
    settings: Settings,
    task: Task,
    name: str,
    log: list[LoggedPrediction],
    summary: dict[str, Any],
) -> None:
    """Quality, risk, input and prediction drift of a tabular window (into ``summary``)."""
    from e2eai.monitoring.drift import check_drift, save_drift
    from e2eai.monitoring.quality import classification_quality
    from e2eai.monitoring.reference import load_reference

    m, out = settings.monitoring, reports_dir(settings)
    versions = Counter(p.model_version for p in log)
    labelled = [p for p in log if p.label is not None]
    if len(labelled) >= m.min_labelled:
        summary["quality"] = classification_quality(
            np.array([p.label for p in labelled]),
            np.array([p.probability for p in labelled]),
            m.threshold,
        )
    answered = versions.most_common(1)
    version = _registry_version(answered[0][0]) if answered else None
    risks = track_risk(settings, task, name, log)
    summary["risk"] = risks.get(version) if version is not None else None
    if version is not None and len(log) >= m.min_rows:
        reference = load_reference(settings, task, version)
        summary.update(
            reference_version=version,
            reference_source=reference.source,
            reference_rows=len(reference.frame),
            holdout_roc_auc=_holdout_auc(settings, version),
        )
        kinds = {f.name: f.kind for f in task.features}
        current = _inputs(log, list(kinds))
        # A numeric input with no value at all on a side cannot be tested for drift; it is
        # reported as such (a feed that stopped shows here), and the rest are tested.
        summary["unmeasured_inputs"] = unmeasured = [
            {
                "name": n,
                "reference_present": _present(reference.frame, n),
                "current_present": _present(current, n),
            }
            for n, kind in kinds.items()
            if kind == "numeric" and min(_present(reference.frame, n), _present(current, n)) == 0.0
        ]
        tested = {n: k for n, k in kinds.items() if n not in {u["name"] for u in unmeasured}}
        drift = check_drift(reference.frame, current, tested, reference.importance)
        drift_html = f"{name}-drift.html"
        save_drift(drift, out / drift_html, out / f"{name}-drift.json")
        summary["drift"] = drift.summary()
        summary["drift_report"] = drift_html
        predictions = check_drift(
            pd.DataFrame({PREDICTION: reference.probability}),
            pd.DataFrame({PREDICTION: [p.probability for p in log]}),
            {PREDICTION: "numeric"},
        )
        summary["prediction_drift"] = predictions.summary()


def _class_figures(
    settings: Settings,
    task: Task,
    name: str,
    log: list[LoggedPrediction],
    summary: dict[str, Any],
) -> None:
    """Quality, risk, input and prediction drift of an image or text window (into
    ``summary``; :mod:`e2eai.monitoring.class_window`)."""
    from e2eai.monitoring.class_window import (
        check_class_drift,
        class_quality,
        load_class_reference,
    )
    from e2eai.monitoring.drift import save_drift

    m, out = settings.monitoring, reports_dir(settings)
    classes = tuple(getattr(task, "classes", ()))
    summary["classes"] = list(classes)
    labelled = [p for p in log if p.label is not None and p.class_probabilities]
    if len(labelled) >= m.min_labelled:
        summary["quality"] = class_quality(
            np.array([p.label for p in labelled]),
            np.array([p.class_probabilities for p in labelled], dtype=np.float64),
            classes,
            getattr(task, "priority_class", None),
        )
    answered = Counter(p.model_version for p in log).most_common(1)
    version = _registry_version(answered[0][0]) if answered else None
    risks = track_risk(settings, task, name, log)
    summary["risk"] = risks.get(version) if version is not None else None
    if version is None or len(log) < m.min_rows:
        return
    reference = load_class_reference(settings, task, version)
    holdout = _holdout_metrics(settings, version)
    summary.update(
        reference_version=version,
        reference_source=reference.source,
        reference_rows=len(reference.frame),
        holdout_roc_auc=holdout.get("roc_auc"),
        holdout_accuracy=holdout.get("accuracy"),
        holdout_macro_f1=holdout.get("macro_f1"),
    )
    drift = check_class_drift(
        settings, task, reference, log, monitoring_dir(settings) / "reference" / f"v{version}"
    )
    if drift is None:
        return
    drift_html = f"{name}-drift.html"
    save_drift(drift.inputs, out / drift_html, out / f"{name}-drift.json")
    summary["drift"] = drift.inputs_summary
    summary["drift_report"] = drift_html
    summary["prediction_drift"] = drift.predictions.summary()


def track_risk(
    settings: Settings, task: Task, name: str, log: list[LoggedPrediction]
) -> dict[int, dict[str, Any]]:
    """The risk tracking of each registry version that answered in the window, after the
    window's labelled rows it answered (none: its standing so far).

    A version's tracker (:class:`e2eai.monitoring.risk.RiskTracker`, kept in
    ``<monitoring>/risk/v<version>.json``) reads every labelled row the version answered
    since its first window, window by window in event-time order, each window once; its
    source bound comes from the version's holdout. A label that arrives after its window
    was reported is not read. A tracker keeps the loss, level and tolerance it began with.
    """
    from e2eai.errors import ModelArtifactError
    from e2eai.monitoring.risk import RiskTracker, source_risk

    r = settings.retraining
    # A multi-class answer is right or wrong: its risk is the 0/1 misclassification of the
    # predicted class, tracked as a "label" (1: right) the answer is sure of (probability 1).
    loss, threshold = (
        (r.risk_loss, settings.monitoring.threshold)
        if task.modality == "tabular"
        else ("misclassification", 0.5)
    )
    folder = monitoring_dir(settings) / "risk"
    labelled: dict[int, list[LoggedPrediction]] = {}
    for p in log:
        version = _registry_version(p.model_version)
        if version is not None:
            rows = labelled.setdefault(version, [])
            if p.label is not None and (task.modality == "tabular" or p.class_probabilities):
                rows.append(p)
    risks: dict[int, dict[str, Any]] = {}
    for version, rows in labelled.items():
        path = folder / f"v{version}.json"
        saved: dict[str, Any] = {"windows": [], "first_alarm_window": None}
        if path.is_file():
            saved = json.loads(path.read_text())
            tracker = RiskTracker.from_dict(saved["tracker"])
        else:
            try:
                labels, probabilities = _holdout_outcomes(settings, task, version)
            except ModelArtifactError as exc:
                risks[version] = {"version": version, "note": str(exc)}
                continue
            source = source_risk(labels, probabilities, r.risk_alpha / 2, loss, threshold)
            tolerance = r.risk_tolerance if task.modality == "tabular" else r.accuracy_drop
            tracker = RiskTracker(source, tolerance, r.risk_alpha / 2, threshold)
        if name not in saved["windows"]:  # a window reported again is not read twice
            tracker.update(*_outcomes(task, rows), [p.event_time for p in rows])
            saved["windows"].append(name)
            if tracker.first_alarm_row is not None and saved["first_alarm_window"] is None:
                saved["first_alarm_window"] = name
        saved["tracker"] = tracker.to_dict()
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_jsonable(saved)))
        risks[version] = {
            "version": version,
            "windows": len(saved["windows"]),
            "first_alarm_window": saved["first_alarm_window"],
            "note": "",
            **tracker.status().model_dump(),
        }
    return risks


def _outcomes(task: Task, rows: list[LoggedPrediction]) -> tuple[list[int], list[float]]:
    """(labels, probabilities) the risk tracker reads of labelled rows: the label and
    P(positive) of a binary answer; of a multi-class one, whether it was right, surely."""
    if task.modality == "tabular":
        return [int(p.label or 0) for p in rows], [p.probability for p in rows]
    return [int(p.predicted_class == p.label) for p in rows], [1.0] * len(rows)


def _holdout_outcomes(settings: Settings, task: Task, version: int) -> tuple[Any, Any]:
    """The same of ``version``'s holdout, scored by its own graph (what bounds its source
    risk)."""
    if task.modality == "tabular":
        from e2eai.monitoring.reference import load_holdout

        holdout = load_holdout(settings, task, version)
        return holdout.frame[task.label].to_numpy(), holdout.probability
    from e2eai.monitoring.class_window import load_class_reference
    from e2eai.training.multiclass_model import frame_labels, task_classes

    scored = load_class_reference(settings, task, version, kind="holdout")
    labels = frame_labels(scored.frame, task.label, task_classes(task))
    return (scored.predicted == labels).astype(int), np.ones(len(labels))


def _present(frame: pd.DataFrame, name: str) -> float:
    """The share of rows with a finite value of numeric input ``name``."""
    values = pd.to_numeric(frame[name], errors="coerce").replace([np.inf, -np.inf], np.nan)
    return float(values.notna().mean()) if len(values) else 0.0


def _inputs(log: list[LoggedPrediction], names: list[str]) -> pd.DataFrame:
    """The logged model inputs as a frame (a prediction logged without them: all missing)."""
    rows = [p.features or {} for p in log]
    return pd.DataFrame({n: [r.get(n) for r in rows] for n in names})


def _registry_version(served: str) -> int | None:
    """The registry version a served version label names (``"3"``), None for a bare file."""
    return int(served) if served.isdigit() else None


def _holdout_auc(settings: Settings, version: int) -> float | None:
    from e2eai.registry import ModelRegistry

    with ModelRegistry.from_settings(settings) as registry:
        value = registry.get(version).metrics.get("roc_auc")
    return float(value) if isinstance(value, int | float) else None


def _holdout_metrics(settings: Settings, version: int) -> dict[str, Any]:
    """The registered model's own holdout metrics (a multi-class version's accuracy, …)."""
    from e2eai.registry import ModelRegistry

    with ModelRegistry.from_settings(settings) as registry:
        holdout = registry.get(version).metrics.get("holdout") or {}
    return dict(holdout.get("model") or {})


def _record(settings: Settings, window: Window, summary: dict[str, Any]) -> None:
    folder = monitoring_dir(settings)
    with (folder / "windows.jsonl").open("a") as log:
        log.write(json.dumps(summary) + "\n")
    _save_state(settings, window)


def _save_state(settings: Settings, window: Window) -> None:
    folder = monitoring_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    state = folder / "state.json"
    partial = state.with_suffix(".tmp")
    partial.write_text(json.dumps({"reported_until": window[1].isoformat()}))
    partial.replace(state)
