"""The monitoring pass's retraining trigger: the policy on each new window, and a run of the
training pipeline submitted to Kubeflow Pipelines when it calls for one.

What the monitoring CronJob does on a cluster (``e2eai monitor`` with ``pipeline.host`` set):
the retraining policy of the local replay (:mod:`e2eai.monitoring.policy`) reads each new
window's summary against the registry's champion, and every decision goes to the app
database's audit log. A decision to retrain becomes a run of the training pipeline that
fine-tunes the champion on the sliding window ending with the window (the same window the
replay's retrains use), gated and canary-deployed by the pipeline itself; the submission, run
id and parameters, is audited as ``retrain-submitted`` and the next pass's cooldown counts
from it. Without an endpoint the decisions are recorded and nothing is submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from e2eai.errors import E2eaiError

if TYPE_CHECKING:
    from e2eai.app.store import AppStore
    from e2eai.config import Settings
    from e2eai.monitoring.policy import ChampionState
    from e2eai.tasks import Task

SUBMITTED = "retrain-submitted"
Submit = Callable[[dict[str, Any], str], Any]  # (pipeline arguments, run name) -> SubmittedRun


@dataclass(frozen=True)
class Triggered:
    """One window's decision and, when it retrained, what was submitted (or why not)."""

    window: str
    decision: dict[str, Any]
    submitted: dict[str, Any] | None = None
    error: str | None = None


def champion_state(settings: Settings, task: Task, version: int) -> ChampionState:
    """What the policy knows of registry ``version``: its holdout ROC-AUC, its reference's
    positive rate and the end of its training window (a multi-class task's: its holdout
    accuracy, its reference's class counts and its registration). Raises E2eaiError when a
    timed task's version has no training window to age from."""
    from e2eai.monitoring.policy import ChampionState
    from e2eai.monitoring.reference import load_reference
    from e2eai.registry import ModelRegistry

    with ModelRegistry.from_settings(settings) as registry:
        record = registry.get(version)
    window = record.lineage.training_window
    if not task.time_based:  # rows without days: the model is as old as its registration
        created = pd.Timestamp(record.created_at)
        created = created.tz_convert("UTC") if created.tzinfo else created.tz_localize("UTC")
        return _class_champion_state(
            settings, task, version, record.metrics, created.to_pydatetime()
        )
    if window is None or window.end is None:
        raise E2eaiError(f"v{version} has no training window to age from")
    auc = record.metrics.get("roc_auc")
    trained_until = pd.Timestamp(window.end + timedelta(days=1), tz="UTC").to_pydatetime()
    return ChampionState.from_reference(
        load_reference(settings, task, version),
        task,
        holdout_roc_auc=float(auc) if isinstance(auc, int | float) else None,
        trained_until=trained_until,
    )


def _class_champion_state(
    settings: Settings,
    task: Task,
    version: int,
    metrics: dict[str, Any],
    trained_until: datetime,
) -> ChampionState:
    """A multi-class version's state: its holdout accuracy and its reference's class counts."""
    import numpy as np

    from e2eai.monitoring.class_window import load_class_reference
    from e2eai.monitoring.policy import ChampionState
    from e2eai.training.multiclass_model import frame_labels, task_classes

    reference = load_class_reference(settings, task, version)
    classes = task_classes(task)
    counts = np.bincount(frame_labels(reference.frame, task.label, classes), minlength=classes)
    model = (metrics.get("holdout") or {}).get("model") or {}
    accuracy, auc = model.get("accuracy"), metrics.get("roc_auc")
    return ChampionState(
        version=version,
        holdout_roc_auc=float(auc) if isinstance(auc, int | float) else None,
        reference_positive_rate=float("nan"),  # no positive class
        trained_until=trained_until,
        reference_rows=len(reference.frame),
        holdout_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
        reference_class_counts=tuple(int(c) for c in counts),
    )


def retraining_arguments(
    settings: Settings, at: datetime, champion: int, task: Task | None = None
) -> dict[str, Any]:
    """The training pipeline's arguments of a retrain decided at ``at``: the champion
    fine-tuned on the sliding window that ends with the last day whose outcomes had landed
    (a task without time, such as images or text: fine-tuned on its rows as they are now)."""
    from e2eai.lifecycle.closed_loop import retrain_settings

    if task is not None and not task.time_based:
        return {"warm_start_version": champion}

    t = retrain_settings(settings, at).training
    return {
        "data_start": str(t.train_start),
        "data_end": str(t.train_end + timedelta(days=t.holdout_days)),
        "train_start": str(t.train_start),
        "train_end": str(t.train_end),
        "warm_start_version": champion,
    }


def last_submission(store: AppStore) -> datetime | None:
    """The decision instant of the newest submitted retrain in the audit log (None: never)."""
    from e2eai.app.store import MAX_PAGE_SIZE

    for entry in store.list_audit(MAX_PAGE_SIZE):
        if entry["action"] == SUBMITTED and entry["outcome"] == "done":
            return datetime.fromisoformat(entry["detail"]["at"])
    return None


def trigger_retraining(
    settings: Settings,
    store: AppStore,
    task: Task,
    windows: list[dict[str, Any]],
    submit: Submit | None,
) -> list[Triggered]:
    """Decide on each window (oldest first) and submit the retrains it calls for.

    A window's decision is made at its end (event time), so a pass that catches up on old
    windows decides as the passes would have. No champion in the registry: nothing to
    decide, and that is said rather than raised.
    """
    from e2eai.monitoring.policy import decide, record_decision
    from e2eai.registry import ModelRegistry

    with ModelRegistry.from_settings(settings) as registry:
        champion = registry.champion(settings.serving.model_name)
    if champion is None:
        return [
            Triggered(w["window"], {}, error=f"no champion of {settings.serving.model_name}")
            for w in windows
        ]
    try:
        state = champion_state(settings, task, champion.version)
    except E2eaiError as exc:  # the pass's reports stand; the policy cannot judge this one
        return [Triggered(w["window"], {}, error=str(exc)) for w in windows]
    out = []
    for window in windows:
        at = datetime.fromisoformat(window["end"])
        decision = decide(
            window,
            state,
            now=at,
            last_retrain_at=last_submission(store),
            in_progress=False,  # a run in flight is the cooldown's to hold back
            settings=settings.retraining,
        )
        record_decision(store, decision, actor="monitor")
        summary = decision.summary()
        if not decision.retrain:
            out.append(Triggered(window["window"], summary))
            continue
        if submit is None:
            out.append(Triggered(window["window"], summary, error="no pipeline.host to submit to"))
            continue
        arguments = retraining_arguments(settings, at, champion.version, task)
        run_name = f"retrain-v{champion.version}-{window['window']}"
        detail: dict[str, Any] = {"at": at.isoformat(), "window": window["window"], **arguments}
        try:
            run = submit(arguments, run_name)
        except Exception as exc:  # the endpoint's refusal is the audit's to keep, not a crash
            store.add_audit(
                actor="monitor",
                action=SUBMITTED,
                outcome="failed",
                reason=f"{type(exc).__name__}: {exc}"[:500],
                detail=detail,
            )
            out.append(Triggered(window["window"], summary, error=str(exc)))
            continue
        submitted = {**detail, "run_id": run.run_id, "url": run.url, "run_name": run_name}
        store.add_audit(
            actor="monitor",
            action=SUBMITTED,
            outcome="done",
            reason=f"{decision.reason}: run {run.run_id} on {run.host}",
            detail=submitted,
        )
        out.append(Triggered(window["window"], summary, submitted=submitted))
    return out


def kfp_submitter(settings: Settings, host: str) -> Submit:
    """Submit the training pipeline to the Kubeflow Pipelines endpoint at ``host``."""
    from e2eai.pipeline.loader import load_training_pipeline
    from e2eai.pipeline.submit import submit_pipeline

    pipeline = load_training_pipeline()

    def submit(arguments: dict[str, Any], run_name: str) -> Any:
        return submit_pipeline(
            pipeline,
            host=host,
            params=arguments,
            run_name=run_name,
            pipeline_root=settings.pipeline.root,
        )

    return submit
