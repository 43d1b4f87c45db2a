"""Train the torch family on a time split: write the Parquet inputs, the spec and the job."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from e2eai.config import TrainingSettings
from e2eai.training.launcher import train_torch
from e2eai.training.tabular_spec import MLPParams, TabularSpec
from e2eai.training.torch_job import TorchJob, TorchRunSummary


def mlp_params(training: TrainingSettings, **overrides: object) -> MLPParams:
    """MLP hyper-parameters from settings, with optional overrides (HPO, fine-tuning)."""
    params = MLPParams(
        learning_rate=training.learning_rate,
        hidden_width=training.hidden_width,
        depth=training.depth,
        dropout=training.dropout,
        optimizer=training.optimizer,
        batch_size=training.batch_size,
        embedding_dim=training.embedding_dim,
        weight_decay=training.weight_decay,
        lr_schedule=training.lr_schedule,
        wide=training.wide,
        cross_buckets=training.cross_buckets,
        deep_lr_factor=training.deep_lr_factor,
        numeric_bins=training.numeric_bins,
    )
    return replace(params, **overrides) if overrides else params


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
    train_path: Path,
    validation_path: Path,
    spec: TabularSpec,
    run_dir: Path,
    training: TrainingSettings,
    workers: int,
    init_weights: Path | None = None,
    on_epoch_end=None,
) -> TorchRunSummary:
    """Train (or resume) the MLP described by ``spec`` into ``run_dir/model``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = spec.save(run_dir / "input_spec.json")
    job = TorchJob(
        train_path=str(train_path),
        validation_path=str(validation_path),
        spec_path=str(spec_path),
        run_dir=str(run_dir),
        params=spec.params,
        epochs=training.epochs,
        patience=training.early_stopping_patience,
        seed=training.seed,
        init_weights=str(init_weights) if init_weights else None,
        freeze_embeddings=training.freeze_embeddings and init_weights is not None,
    )
    return train_torch(job, workers, on_epoch_end)
