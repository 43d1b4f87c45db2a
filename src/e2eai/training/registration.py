"""Register a training result as a candidate version in the model registry (contract API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2eai import schema
from e2eai.config import Settings
from e2eai.training.champion import open_registry
from e2eai.training.model_io import MODEL_FILES
from e2eai.training.run import TrainingResult


def candidate_artifacts(result: TrainingResult) -> dict[str, Path]:
    """Model files, holdout data, metrics, plots and HPO tables to store with the version."""
    artifacts = {
        name: result.model_dir / name for name in MODEL_FILES if (result.model_dir / name).is_file()
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
    """Headline holdout numbers plus the full per-model metrics and gate verdicts."""
    model = result.metrics["model"]
    return {
        "roc_auc": model["roc_auc"],
        "pr_auc": model["pr_auc"],
        "log_loss": model["log_loss"],
        "brier": model["brier"],
        "holdout": result.metrics,
        "holdout_window": result.holdout_window,
        "gates": {g.name: {"passed": g.passed, "message": g.message} for g in result.gates},
    }


def register_candidate(settings: Settings, result: TrainingResult, registry: Any = None) -> Any:
    """Store ``result`` as a new ``candidate`` version; returns the registry's ModelVersion."""
    registry = registry or open_registry(settings)
    # code_version is filled in by the registry (git sha of the running code).
    lineage = {
        "raw_snapshot": result.raw_snapshot,
        "feature_service": schema.FEATURE_SERVICE,
        "training_window": result.training_window,
        "parent_version": result.parent_version,
    }
    return registry.register(
        name=settings.serving.model_name,
        family=result.family,
        artifacts=candidate_artifacts(result),
        metrics=candidate_metrics(result),
        params=result.params,
        lineage=lineage,
        stage="candidate",
    )
