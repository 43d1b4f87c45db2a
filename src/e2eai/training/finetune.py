"""Warm-start fine-tuning: continue the champion's weights on a newer window of data.

The architecture, vocabularies and normalisation statistics come from the champion (its
numbers are what the weights were trained against); categories it never saw are appended
with the unknown row's embedding as their start. The learning rate is the champion's times
``training.finetune_lr_factor``; embeddings may be frozen.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch

from e2eai.config import TrainingSettings
from e2eai.errors import ModelArtifactError, TrainingConfigError
from e2eai.tasks import Task
from e2eai.training.columns import feature_kinds
from e2eai.training.mlp import load_mlp, resize_embeddings
from e2eai.training.mlp_family import WEIGHTS_FILE, WideDeepFamily, fit_mlp
from e2eai.training.model_io import write_info
from e2eai.training.torch_job import TorchRunSummary
from e2eai.training.torch_training import write_inputs


def finetune(
    champion_dir: Path,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    run_dir: Path,
    training: TrainingSettings,
    task: Task,
    workers: int | None = None,
) -> TorchRunSummary:
    """Fine-tune the torch model in ``champion_dir`` on ``train`` (early stop on ``validation``).

    The result lands in ``run_dir/model``; its history's epoch 0 is the champion itself.
    """
    if not (champion_dir / WEIGHTS_FILE).is_file():
        raise ModelArtifactError(
            f"{champion_dir}: warm start needs a {WideDeepFamily.name} champion "
            f"({WEIGHTS_FILE} missing)"
        )
    champion, old_spec = load_mlp(champion_dir)
    if old_spec.kinds() != feature_kinds(task):
        raise TrainingConfigError(
            f"{champion_dir}: the champion's inputs differ from task {task.name!r}'s features "
            "(other feature settings, e.g. features.windows_hours?); train from scratch"
        )
    params = replace(
        old_spec.params, learning_rate=old_spec.params.learning_rate * training.finetune_lr_factor
    )
    spec = old_spec.extended_with(train).with_params(params)
    run_dir.mkdir(parents=True, exist_ok=True)
    init_path = run_dir / "init_weights.pt"
    if not init_path.exists():  # keep the bytes a checkpoint's fingerprint was taken from
        torch.save(resize_embeddings(champion.state_dict(), old_spec, spec), init_path)
    train_path, validation_path = write_inputs(train, validation, run_dir / "data")
    summary = fit_mlp(
        spec,
        task.label,
        train_path,
        validation_path,
        run_dir,
        training,
        workers=training.workers if workers is None else workers,
        init_weights=init_path,
    )
    model_dir = Path(summary.model_dir)
    write_info(
        model_dir,
        WideDeepFamily.name,
        task,
        {
            **asdict(params),
            "warm_start": True,
            "finetune_lr_factor": training.finetune_lr_factor,
            "freeze_embeddings": training.freeze_embeddings,
        },
    )
    return summary
