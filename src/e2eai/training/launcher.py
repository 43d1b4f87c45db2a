"""Start a torch training job: in-process for one worker, ``torchrun`` for several.

Both modes run ``e2eai.training.ddp_loop.run_worker`` on the same job file, so tests of the
single-process mode exercise the code the distributed workers run.

Inside a multi-node cluster job the processes already exist: torchrun started them on every
node and they form one world (:mod:`e2eai.training.torch_world`). There the job's leader
installs a :class:`TorchJobRunner` with :func:`torch_jobs_run_by`, and every torch fit of the
training run (except single-process HPO trials) is handed to that world instead of a new
local torchrun.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol

from e2eai.errors import TrainingLaunchError
from e2eai.training.torch_job import TorchJob, TorchRunSummary


class TorchJobRunner(Protocol):
    """Something other than a local torchrun that trains torch jobs (a multi-node world)."""

    def run(self, job: TorchJob) -> TorchRunSummary:
        """Train (or resume) ``job`` to the end; the summary rank 0 wrote."""


_active_runner: ContextVar[TorchJobRunner | None] = ContextVar("torch_job_runner", default=None)


@contextmanager
def torch_jobs_run_by(runner: TorchJobRunner) -> Iterator[None]:
    """Within the block, ``train_torch`` hands jobs to ``runner`` (per-epoch callbacks aside)."""
    token = _active_runner.set(runner)
    try:
        yield
    finally:
        _active_runner.reset(token)


JOB_FILE = "job.json"
LOG_FILE = "torchrun.log"


def torchrun_command(job_path: Path, workers: int) -> list[str]:
    """The torchrun command line (single node, c10d rendezvous on a free local port)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={workers}",
        "-m",
        "e2eai.training.worker",
        str(job_path),
    ]


def start_torchrun(job: TorchJob, workers: int) -> subprocess.Popen[bytes]:
    """Launch ``workers`` DDP processes for ``job`` without waiting; output → torchrun.log."""
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    job_path = job.save(run_dir / JOB_FILE)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker: workers share the cores
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")) if p
    )
    log = (run_dir / LOG_FILE).open("ab")
    return subprocess.Popen(
        torchrun_command(job_path, workers),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _log_tail(run_dir: Path, lines: int = 25) -> str:
    path = run_dir / LOG_FILE
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def train_torch(job: TorchJob, workers: int, on_epoch_end=None) -> TorchRunSummary:
    """Run ``job`` to completion (resuming from its checkpoint if one exists).

    Under :func:`torch_jobs_run_by` the active runner trains it with however many processes
    its world has (``workers`` is the local setting and does not apply there); a job with a
    per-epoch callback (an HPO trial) still trains here, in this process alone.
    """
    if workers < 1:
        raise TrainingLaunchError(f"training.workers must be at least 1, got {workers}")
    runner = _active_runner.get()
    if runner is not None and on_epoch_end is None:
        return runner.run(job)
    if workers == 1:
        from e2eai.training.ddp_loop import run_worker

        Path(job.run_dir).mkdir(parents=True, exist_ok=True)
        job.save(Path(job.run_dir) / JOB_FILE)
        return run_worker(job, on_epoch_end, alone=True)
    if on_epoch_end is not None:
        raise TrainingLaunchError("per-epoch callbacks (HPO pruning) need training.workers=1")
    process = start_torchrun(job, workers)
    code = process.wait()
    run_dir = Path(job.run_dir)
    if code != 0:
        raise TrainingLaunchError(
            f"torchrun with {workers} workers exited with code {code}; it resumes from "
            f"{run_dir / 'checkpoint.pt'} when re-run. Log tail ({run_dir / LOG_FILE}):\n"
            + _log_tail(run_dir)
        )
    return TorchRunSummary.load(run_dir / "summary.json")
