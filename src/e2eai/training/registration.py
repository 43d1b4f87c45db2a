"""Register a training result as a candidate version in the model registry (contract API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2eai.config import Settings
from e2eai.tasks import Task, load_task
from e2eai.training.champion import open_registry
from e2eai.training.families import model_files
from e2eai.training.run import TrainingResult


def candidate_artifacts(result: TrainingResult) -> dict[str, Path]:
    """Model files, holdout data, metrics, plots and HPO tables to store with the version."""
    artifacts = {
        name: result.model_dir / name
        for name in model_files()
        if (result.model_dir / name).is_file()
    }
    for name in ("hpo_trials.csv", "best_params.json"):
        if (result.model_dir / name).is_file():
            artifacts[name] = result.model_dir / name
    artifacts["holdout.parquet"] = result.holdout_path
    artifacts.update(result.extra_artifacts)
    for name, path in result.plots.items():
        artifacts[f"{name}.png"] = path
    return artifacts


def candidate_metrics(result: TrainingResult) -> dict[str, Any]:
    """Headline holdout numbers plus the full per-model metrics, gate verdicts and the split."""
    model = result.metrics["model"]
    return {
        "roc_auc": model["roc_auc"],
        "pr_auc": model["pr_auc"],
        "log_loss": model["log_loss"],
        "brier": model["brier"],
        "holdout": result.metrics,
        "holdout_window": result.holdout_window,
        "task": result.task,
        "split": result.split,
        "gates": {g.name: {"passed": g.passed, "message": g.message} for g in result.gates},
    }


def candidate_lineage(result: TrainingResult, task: Task) -> dict[str, Any]:
    """Data snapshot, feature service, training window (days of a time split), parent, task.

    A stratified split has no days: its rows, share and seed are in the metrics' ``split``.
    """
    lineage: dict[str, Any] = {
        "raw_snapshot": result.raw_snapshot,
        "feature_service": task.feature_service or None,
        "training_window": result.training_window if task.time_based else None,
        "parent_version": result.parent_version,
    }
    lineage["task"] = task.name
    return lineage


def register_candidate(
    settings: Settings, result: TrainingResult, registry: Any = None, task: Task | None = None
) -> Any:
    """Store ``result`` as a new ``candidate`` version; returns the registry's ModelVersion."""
    task = task or load_task(settings)
    registry = registry or open_registry(settings)
    # code_version is filled in by the registry (git sha of the running code).
    return registry.register(
        name=settings.serving.model_name,
        family=result.family,
        artifacts=candidate_artifacts(result),
        metrics=candidate_metrics(result),
        params=result.params,
        lineage=candidate_lineage(result, task),
        stage="candidate",
    )
