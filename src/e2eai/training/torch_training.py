"""Train a torch family: write the Parquet inputs once, describe the job, launch the workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from e2eai.config import TrainingSettings
from e2eai.training.launcher import train_torch
from e2eai.training.torch_job import TorchJob, TorchRunSummary


def write_inputs(
    train: pd.DataFrame, validation: pd.DataFrame, data_dir: Path
) -> tuple[Path, Path]:
    """The Parquet files workers read (one copy shared by every rank and HPO trial)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    train_path, validation_path = data_dir / "train.parquet", data_dir / "validation.parquet"
    if not train_path.exists():
        train.to_parquet(train_path, index=False)
    if not validation_path.exists():
        validation.to_parquet(validation_path, index=False)
    return train_path, validation_path


def fit_torch(
    family: str,
    spec_path: Path,
    params: Any,
    label: str,
    train_path: Path,
    validation_path: Path,
    run_dir: Path,
    training: TrainingSettings,
    workers: int,
    init_weights: Path | None = None,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> TorchRunSummary:
    """Train (or resume) a model of the torch ``family`` into ``run_dir/model``.

    ``spec_path`` is the family's description of the inputs, ``params`` its
    hyper-parameters; epochs, patience, seed and freezing come from ``training``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    job = TorchJob(
        train_path=str(train_path),
        validation_path=str(validation_path),
        spec_path=str(spec_path),
        run_dir=str(run_dir),
        params=params,
        label=label,
        family=family,
        epochs=training.epochs_or(),
        patience=training.early_stopping_patience,
        seed=training.seed,
        init_weights=str(init_weights) if init_weights else None,
        freeze_embeddings=training.freeze_embeddings and init_weights is not None,
    )
    return train_torch(job, workers, on_epoch_end)
