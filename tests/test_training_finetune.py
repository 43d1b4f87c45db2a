"""Warm start: fine-tuning begins at the champion's weights, not at a fresh initialisation."""

from __future__ import annotations

from datetime import date

import pytest
import torch
from synthetic import flight_task, small_training_settings, synthetic_frame

from e2eai.training.ddp_loop import evaluate
from e2eai.training.families import torch_family
from e2eai.training.finetune import finetune
from e2eai.training.launcher import train_torch
from e2eai.training.mlp import load_mlp
from e2eai.training.model_io import write_info
from e2eai.training.split import time_split
from e2eai.training.tabular_spec import MLPParams, TabularSpec
from e2eai.training.torch_job import TorchJob
from e2eai.training.torch_training import write_inputs

TASK = flight_task()
MLP = torch_family("torch_mlp")


def _job(train_path, validation_path, spec_path, run_dir, params, **kwargs) -> TorchJob:
    return TorchJob(
        str(train_path),
        str(validation_path),
        str(spec_path),
        str(run_dir),
        params,
        label=TASK.label,
        family=MLP.name,
        **kwargs,
    )


@pytest.fixture(scope="module")
def champion_dir(tmp_path_factory):
    """A small torch champion trained on January–February."""
    tmp = tmp_path_factory.mktemp("champion")
    frame = synthetic_frame(3000, days=60, seed=4)
    split = time_split(
        frame, TASK, date(2013, 1, 1), date(2013, 2, 28), 10, 0, require_holdout=False
    )
    train_path, validation_path = write_inputs(split.train, split.validation, tmp / "data")
    spec = TabularSpec.fit(split.train, MLPParams(batch_size=256, hidden_width=32), TASK)
    job = _job(
        train_path,
        validation_path,
        spec.save(tmp / "spec.json"),
        tmp / "run",
        spec.params,
        epochs=3,
        patience=3,
    )
    train_torch(job, workers=1)
    write_info(tmp / "run" / "model", MLP.name, TASK, {})
    return tmp / "run" / "model"


@pytest.fixture(scope="module")
def newer_window():
    """March–April flights, with a carrier the champion never saw."""
    frame = synthetic_frame(
        2000,
        start=date(2013, 3, 1),
        days=45,
        seed=5,
        carriers=("UA", "AA", "DL", "B6", "EV", "MQ", "WN", "US", "F9"),
    )
    return time_split(
        frame, TASK, date(2013, 3, 1), date(2013, 4, 14), 10, 0, require_holdout=False
    )


def test_finetune_starts_from_the_champion(champion_dir, newer_window, tmp_path):
    training = small_training_settings(tmp_path, epochs=2, finetune_lr_factor=0.5).training
    summary = finetune(
        champion_dir,
        newer_window.train,
        newer_window.validation,
        tmp_path / "ft",
        training,
        TASK,
        workers=1,
    )

    champion, champion_spec = load_mlp(champion_dir)
    tuned_spec = TabularSpec.load(tmp_path / "ft" / "model" / "model_spec.json")
    # Step 0 of the fine-tune is the champion itself: same validation loss. (The new
    # carrier's embedding row copies the unknown row, so old and new lookups agree.)
    validation_path = tmp_path / "ft" / "data" / "validation.parquet"
    champion_job = _job("", validation_path, champion_dir / "model_spec.json", "", None)
    validation = MLP.dataset(champion_job, str(validation_path))
    champion_loss, _ = evaluate(MLP, champion, validation)
    assert summary.history[0]["validation_loss"] == pytest.approx(champion_loss, abs=1e-6)

    fresh = TabularSpec.fit(newer_window.train, champion_spec.params, TASK)
    fresh_job = _job(
        tmp_path / "ft" / "data" / "train.parquet",
        validation_path,
        fresh.save(tmp_path / "fresh_spec.json"),
        tmp_path / "fresh",
        fresh.params,
        epochs=1,
    )
    fresh_summary = train_torch(fresh_job, workers=1)
    assert abs(fresh_summary.history[0]["validation_loss"] - champion_loss) > 1e-3

    # Vocabulary: old indices kept, the unseen carrier appended; lr scaled by the factor.
    old = champion_spec.vocab["carrier"]
    assert tuned_spec.vocab["carrier"][: len(old)] == old
    assert tuned_spec.vocab["carrier"][len(old) :] == ["F9"]
    assert tuned_spec.params.learning_rate == pytest.approx(
        champion_spec.params.learning_rate * 0.5
    )
    assert summary.resumed_from_epoch == 0 and summary.epochs_run == 2


def test_frozen_embeddings_do_not_move(champion_dir, newer_window, tmp_path):
    training = small_training_settings(tmp_path, epochs=1, freeze_embeddings=True).training
    summary = finetune(
        champion_dir,
        newer_window.train,
        newer_window.validation,
        tmp_path / "ft",
        training,
        TASK,
        workers=1,
    )
    champion, _ = load_mlp(champion_dir)
    tuned = torch.load(tmp_path / "ft" / "model" / "model.pt", weights_only=True)
    before = champion.state_dict()
    n_old = before["embeddings.0.weight"].shape[0]
    assert torch.equal(tuned["embeddings.0.weight"][:n_old], before["embeddings.0.weight"])
    # The rest of the network did train (the best epoch is the fine-tuned one).
    assert summary.best_epoch == 1
    assert not torch.equal(tuned["body.0.weight"], before["body.0.weight"])
