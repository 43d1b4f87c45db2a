"""DDP with torchrun (2 gloo workers on CPU): same model shape as single-process, and a run
whose worker is SIGKILLed resumes from its last checkpoint instead of starting again."""

from __future__ import annotations

import os
import signal
import time
from datetime import date
from pathlib import Path

import pytest
import torch
from synthetic import flight_task, synthetic_frame

from e2eai.training.ddp_loop import CHECKPOINT
from e2eai.training.launcher import start_torchrun, train_torch
from e2eai.training.split import time_split
from e2eai.training.tabular_spec import MLPParams, TabularSpec
from e2eai.training.torch_job import TorchJob
from e2eai.training.torch_training import write_inputs

TASK = flight_task()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    frame = synthetic_frame(4000, days=75, seed=2)
    split = time_split(frame, TASK, date(2013, 1, 1), date(2013, 2, 28), 10, 14)
    train_path, validation_path = write_inputs(split.train, split.validation, tmp / "data")
    spec = TabularSpec.fit(split.train, MLPParams(batch_size=128, hidden_width=32), TASK)
    return train_path, validation_path, spec.save(tmp / "spec.json"), spec.params


def _job(inputs, run_dir: Path, epochs: int, patience: int = 50) -> TorchJob:
    train_path, validation_path, spec_path, params = inputs
    return TorchJob(
        str(train_path),
        str(validation_path),
        str(spec_path),
        str(run_dir),
        params,
        label=TASK.label,
        family="torch_mlp",
        epochs=epochs,
        patience=patience,
    )


# torchrun starts three Python processes that import torch: ~15-30 s on 2 shared cores.
pytestmark = pytest.mark.slow


def test_two_workers_train_the_same_model_shape_as_one(inputs, tmp_path):
    ddp = train_torch(_job(inputs, tmp_path / "ddp", epochs=2), workers=2)
    single = train_torch(_job(inputs, tmp_path / "single", epochs=2), workers=1)
    assert ddp.world_size == 2 and single.world_size == 1
    assert ddp.epochs_run == 2
    ddp_state = torch.load(tmp_path / "ddp" / CHECKPOINT, weights_only=False)["model"]
    single_state = torch.load(tmp_path / "single" / CHECKPOINT, weights_only=False)["model"]
    # Rank 0 saved the unwrapped module: no "module." prefixes, same tensors and shapes.
    assert list(ddp_state) == list(single_state)
    assert all(ddp_state[k].shape == single_state[k].shape for k in ddp_state)
    # Both ranks ran: each left its pid file.
    assert sorted(p.name for p in (tmp_path / "ddp" / "workers").iterdir()) == [
        "rank0.pid",
        "rank1.pid",
    ]
    assert ddp.best_validation_auc > 0.55


def test_killed_worker_run_resumes_from_checkpoint(inputs, tmp_path):
    """Kill rank 1 (SIGKILL) once epoch 1 is checkpointed; the re-run continues from it."""
    run_dir = tmp_path / "run"
    job = _job(inputs, run_dir, epochs=8)
    process = start_torchrun(job, workers=2)
    checkpoint = run_dir / CHECKPOINT
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoint.exists(), (run_dir / "torchrun.log").read_text()
    os.kill(int((run_dir / "workers" / "rank1.pid").read_text()), signal.SIGKILL)
    assert process.wait(timeout=120) != 0, "the run survived a killed worker"
    saved = torch.load(checkpoint, weights_only=False)["state"]["epoch"]
    assert 1 <= saved < job.epochs, "kill came too late to test resuming"

    summary = train_torch(job, workers=2)  # the same job, re-run
    assert summary.resumed_from_epoch == saved > 0
    assert summary.epochs_run == job.epochs
    epochs = [h["epoch"] for h in summary.history]
    assert epochs == list(range(job.epochs + 1))  # no epoch lost or repeated
