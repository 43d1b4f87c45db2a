"""Export a registered model version and attach ``model.onnx`` to it in the registry."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from e2eai.config import Settings
from e2eai.errors import ModelArtifactError
from e2eai.export.model_export import SERVED_FILE, ExportResult, export_model
from e2eai.tasks import Task, load_task

REFERENCE_FILE = "reference.parquet"


def export_registered(
    settings: Settings, version: int | None = None, registry=None, task: Task | None = None
) -> tuple[int, ExportResult]:
    """Export ``version`` (default: the newest version of the served model name).

    The holdout stored with the version at training time is the parity set; ``task`` (the
    settings' by default) fixes the ONNX signature.
    """
    from e2eai.training.champion import fetch_model_dir, open_registry

    task = task or load_task(settings)
    own = registry is None
    registry = registry or open_registry(settings)
    try:
        if version is None:
            versions = registry.list(settings.serving.model_name)
            if not versions:
                raise ModelArtifactError(
                    f"no versions of {settings.serving.model_name!r} in the registry to export"
                )
            version = versions[-1].version
        record = registry.get(version)
        if SERVED_FILE in record.artifacts:
            raise ModelArtifactError(f"version {version} already has {SERVED_FILE}")
        if "holdout.parquet" not in record.artifacts:
            raise ModelArtifactError(f"version {version} has no holdout.parquet to check parity on")
        work = settings.home / "export" / f"v{version}"
        model_dir = fetch_model_dir(registry, version, work / "model")
        holdout = pd.read_parquet(registry.fetch_artifact(version, "holdout.parquet", work))
        # The training sample kept for monitoring calibrates static int8 (image tasks).
        calibration = (
            pd.read_parquet(registry.fetch_artifact(version, REFERENCE_FILE, work))
            if task.modality == "image" and REFERENCE_FILE in record.artifacts
            else None
        )
        result = export_model(
            model_dir, holdout, work / "onnx", settings.export, task, calibration, settings.training
        )
        registry.add_artifacts(version, {SERVED_FILE: result.onnx_path})
    finally:
        if own:
            registry.close()
    return version, result


def export_local(
    settings: Settings,
    model_dir: Path,
    holdout_path: Path | None = None,
    task: Task | None = None,
) -> ExportResult:
    """Export a model directory of a local training run (holdout next to it by default)."""
    holdout_path = holdout_path or model_dir.parent / "holdout.parquet"
    if not holdout_path.is_file():
        raise ModelArtifactError(f"{holdout_path}: no holdout Parquet to check parity on")
    task = task or load_task(settings)
    reference = holdout_path.with_name(REFERENCE_FILE)
    return export_model(
        model_dir,
        pd.read_parquet(holdout_path),
        model_dir.parent / "onnx",
        settings.export,
        task,
        pd.read_parquet(reference) if task.modality == "image" and reference.is_file() else None,
        settings.training,
    )
