"""The lifecycle scenario: champion → serve → fine-tuned challenger → canary → decision.

Each stage is a call into the library; this module only sequences them and records what
happened (the same functions back the KFP components and the CLI).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from e2eai.config import Settings
from e2eai.lifecycle.record import LoopRecord, Progress, TrainFn, TrainingOutcome
from e2eai.lifecycle.replay import replay_through_router
from e2eai.lifecycle.report import write_report
from e2eai.reporting import format_window

if TYPE_CHECKING:
    from e2eai.app.store import LoggedPrediction
    from e2eai.tasks import Task


def _with_training(settings: Settings, **update: Any) -> Settings:
    training = settings.training.model_copy(update=update)
    return settings.model_copy(update={"training": training})


def _champion_and_challenger(settings: Settings, task: Task) -> tuple[Settings, Settings, str, str]:
    """Training settings of the champion and of the challenger, and what each trains on.

    Timed tasks: the champion on the training window, the challenger on the newer window
    after its holdout. Untimed tasks: the champion on the first half of the training rows,
    the challenger on all of them (more data arrived); both keep the same holdout rows.
    """
    t = settings.training
    if task.time_based:
        newer_start = t.train_end + timedelta(days=t.holdout_days + 1)
        newer_end = newer_start + (t.train_end - t.train_start) // 2
        return (
            settings,
            _with_training(settings, train_start=newer_start, train_end=newer_end),
            f"{t.train_start}..{t.train_end}",
            f"{newer_start}..{newer_end}",
        )
    half = t.pool_fraction / 2
    return (
        _with_training(settings, pool_fraction=half),
        settings,
        f"{half:.0%} of the training rows",
        f"{t.pool_fraction:.0%} of the training rows",
    )


def _family_name(settings: Settings, task: Task) -> str:
    """The family the run trains (multi-class tasks default to their own first family)."""
    if task.modality == "tabular":
        return settings.training.family
    from e2eai.training.multiclass_run import chosen_family_name

    return chosen_family_name(settings, task)


def train_in_process(settings: Settings, warm_start_from: int | None) -> TrainingOutcome:
    """The stages as plain library calls, in this process."""
    from e2eai.export.registered import export_registered
    from e2eai.registry import ModelRegistry
    from e2eai.tasks import load_task
    from e2eai.training import run_training
    from e2eai.training.registration import register_candidate

    task = load_task(settings)
    task.prepare_data(settings)
    task.build_feature_tables(settings)
    task.apply_features(settings)
    task.materialize(settings)
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


_BINARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")
_SUMMARY_METRICS = (*_BINARY_METRICS, "accuracy", "macro_f1")
"""Holdout metrics a run's summary carries per model (multi-class ones when present)."""


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
            name: {k: m.get(k) for k in _SUMMARY_METRICS if k in m or k in _BINARY_METRICS}
            for name, m in holdout_metrics.items()
        },
        "training_window": record.lineage["training_window"],
        "holdout_window": record.metrics.get("holdout_window"),
        "holdout_path": str(holdout),
        "plots": plots,
    }


def monitor_served(
    settings: Settings, task: Task, served: list[LoggedPrediction]
) -> dict[str, Any] | None:
    """The monitoring pass over the cycle's replayed answers, as one window: quality of the
    labelled answers, drift of what was asked against the answering version's reference
    (:func:`e2eai.monitoring.monitor.monitor_window`; its HTML report beside the others)."""
    from e2eai.monitoring.monitor import monitor_window, reports_dir

    if not served:
        return None
    first, last = served[0].event_time, served[-1].event_time
    summary = monitor_window(settings, task, (first, last + timedelta(microseconds=1)), served)
    quality, drift = summary.get("quality") or {}, summary.get("drift") or {}
    return {
        "rows": summary["rows"],
        "labelled": summary["labelled"],
        "reference_version": summary["reference_version"],
        "accuracy": quality.get("accuracy"),
        "macro_f1": quality.get("macro_f1"),
        "roc_auc": quality.get("roc_auc"),
        "drift_detected": drift.get("drift_detected"),
        "drifted": drift.get("drifted"),
        "report": str(reports_dir(settings) / summary["report"]),
    }


def run_loop(
    settings: Settings, progress: Progress = print, train: TrainFn = train_in_process
) -> LoopRecord:
    """Run the whole loop and write its report; returns the record."""
    from e2eai.registry import ModelRegistry
    from e2eai.serving.canary_analysis import CanaryPolicy
    from e2eai.serving.local import LocalServing
    from e2eai.serving.rollout import ModelSource
    from e2eai.tasks import load_task

    task = load_task(settings)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = LoopRecord(run_dir=settings.home / "loop" / stamp)
    record.run_dir.mkdir(parents=True, exist_ok=True)
    record.data["task"] = task.name
    champion_settings, challenger_settings, champion_on, challenger_on = _champion_and_challenger(
        settings, task
    )

    started = time.perf_counter()
    features = "Feast" if task.feature_views else "features"
    progress(
        f"1/5 champion ({task.name}): data → {features} → train "
        f"{_family_name(settings, task)} on {champion_on} → gates → ONNX → register"
    )
    champion = train(champion_settings, None)
    record.data.update(_data_summary(settings))
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
        progress(f"2/5 serve champion v{champion.version} on loopback (KServe ModelServer)")
        serving.start(ModelSource.from_registry(champion.version))
        record.step("serve", started, endpoint=serving.state().endpoint)

        started = time.perf_counter()
        progress(f"3/5 challenger: fine-tune v{champion.version} on {challenger_on}")
        challenger = train(challenger_settings, champion.version)
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
            window = format_window(record.models["challenger"]["holdout_window"])
            progress(f"4/5 canary: replay {len(replay)} held-out rows ({window}) with feedback")
            served = replay_through_router(settings, policy, replay, record, progress)
            record.step("canary", started, decisions=len(record.canary))
            started = time.perf_counter()
            progress(f"5/5 monitor the {len(served)} served answers: quality and drift")
            record.monitoring = monitor_served(settings, task, served)
            record.step("monitor", started)
        record.data["serving"] = serving.describe()
    finally:
        serving.stop()
    with ModelRegistry.from_settings(settings) as registry:  # stages after the decisions
        for model in record.models.values():
            model["stage"] = str(registry.get(model["version"]).stage)
    write_report(record)
    return record
