"""One torchrun world across the nodes of a cluster training job: a leader and its followers.

A TrainJob or PyTorchJob runs ``torchrun … -m e2eai.pipeline.cluster_entry`` on every node;
torchrun starts ``numProcPerNode`` processes per node and the rendezvous joins them all into
one world. The world's rank 0 is the **leader**: it runs the whole training run (split,
baselines, evaluation, gates) exactly as a local run does. Each torch fit inside it becomes a
job of the whole world: the leader puts the job's input files in the artifact store,
broadcasts where they are, and every rank, leader included, runs the DDP worker on them with
its checkpoints in the store (:class:`~e2eai.training.checkpoints.StoreCheckpoints`). The
other ranks, the **followers**, do nothing else: they wait for the next job, or for the
leader's word that the run is over (or failed, so that they fail with it).

Files under the job's shared prefix in the store::

    <prefix>/torch-jobs/<fingerprint[:16]>/inputs/{train.parquet,validation.parquet,...}
    <prefix>/torch-jobs/<fingerprint[:16]>/checkpoints/epoch-NNNN-<sha256[:16]>.pt

Keyed by the job's fingerprint (its data and parameters), so the restarted pods of the same
cluster job find the checkpoints of the same torch job and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e2eai.errors import TrainingLaunchError
from e2eai.training.checkpoints import StoreCheckpoints
from e2eai.training.launcher import torch_jobs_run_by
from e2eai.training.torch_job import TorchJob, TorchRunSummary

if TYPE_CHECKING:
    from e2eai.storage import ArtifactStore

log = logging.getLogger(__name__)

INPUT_FILES = {
    "train_path": "train.parquet",
    "validation_path": "validation.parquet",
    "spec_path": "spec.json",
    "init_weights": "init_weights.pt",
}
"""The job's fields that name files, and the file names they travel under."""


@dataclass(frozen=True)
class TorchWorld:
    """This process's place in the job's world and where the world shares files."""

    rank: int
    world_size: int
    store: ArtifactStore
    prefix: str
    """The cluster job's prefix in the store (one per TrainJob/PyTorchJob)."""
    work_dir: Path
    """This process's local scratch directory (a pod's filesystem is its own)."""

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @classmethod
    @contextmanager
    def join(
        cls, store: ArtifactStore, prefix: str, work_dir: Path, timeout_seconds: float
    ) -> Iterator[TorchWorld]:
        """Join the world torchrun set up (env:// rendezvous: MASTER_ADDR, RANK, WORLD_SIZE).

        ``timeout_seconds`` bounds every collective, including the followers' wait for the
        next job while the leader trains baselines or runs an HPO search, so it is the whole
        job's time budget rather than torch's default 30 minutes.
        """
        import torch.distributed as dist

        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_seconds))
        try:
            world = cls(dist.get_rank(), dist.get_world_size(), store, prefix, work_dir)
            log.info("rank=%d world_size=%d joined", world.rank, world.world_size)
            yield world
        finally:
            dist.destroy_process_group()

    def _broadcast(self, message: dict[str, Any] | None) -> dict[str, Any]:
        import torch.distributed as dist

        box = [message]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    @contextmanager
    def leading(self) -> Iterator[None]:
        """Leader only: torch fits inside the block train on the whole world.

        Leaving the block releases the followers; an exception tells them the run failed
        (they exit non-zero too, so the job fails as one) and propagates.
        """
        if not self.is_leader:
            raise TrainingLaunchError(f"rank {self.rank} cannot lead: only rank 0 does")
        try:
            with torch_jobs_run_by(_WorldRunner(self)):
                yield
        except BaseException as exc:
            try:
                self._broadcast({"kind": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]})
            except Exception as broken:  # the world itself broke (a rank died): nobody to tell
                log.warning("could not tell the followers that the run failed: %s", broken)
            raise
        self._broadcast({"kind": "done"})

    def follow(self) -> int:
        """Follower: train the leader's torch jobs until it is done; returns how many."""
        from e2eai.training.ddp_loop import run_worker

        trained = 0
        while True:
            message = self._broadcast(None)
            if message["kind"] == "done":
                return trained
            if message["kind"] == "failed":
                raise TrainingLaunchError(f"the leader (rank 0) failed: {message['error']}")
            job = self._fetch_job(message)
            run_worker(job, checkpoints=StoreCheckpoints(self.store, message["checkpoints"]))
            trained += 1

    def _job_prefix(self, fingerprint: str) -> str:
        return f"{self.prefix}/torch-jobs/{fingerprint[:16]}"

    def _fetch_job(self, message: dict[str, Any]) -> TorchJob:
        """The leader's job with its files downloaded to this process's scratch directory."""
        fingerprint = message["fingerprint"]
        local = self.work_dir / "torch-jobs" / fingerprint[:16]
        raw = dict(message["job"])
        for field, key in message["inputs"].items():
            raw[field] = str(self.store.download(key, local / "inputs" / INPUT_FILES[field]))
        raw["run_dir"] = str(local / f"rank{self.rank}")
        job = TorchJob.from_dict(raw)
        if job.fingerprint() != fingerprint:
            where = self.store.uri(self._job_prefix(fingerprint))
            raise TrainingLaunchError(
                f"rank {self.rank}: the inputs under {where} do not match the leader's job "
                "(changed or damaged in the store)"
            )
        return job

    def dispatch(self, job: TorchJob) -> StoreCheckpoints:
        """Leader: put the job's files in the store and send the followers to it.

        Returns where the job's checkpoints live, for the leader's own worker.
        """
        fingerprint = job.fingerprint()
        base = self._job_prefix(fingerprint)
        inputs = {}
        for field, name in INPUT_FILES.items():
            path = getattr(job, field)
            if path is not None:
                inputs[field] = f"{base}/inputs/{name}"
                self.store.put_file(inputs[field], Path(path))
        checkpoints = f"{base}/checkpoints"
        self._broadcast(
            {
                "kind": "job",
                "job": job.to_dict(),
                "fingerprint": fingerprint,
                "inputs": inputs,
                "checkpoints": checkpoints,
            }
        )
        return StoreCheckpoints(self.store, checkpoints)


@dataclass(frozen=True)
class _WorldRunner:
    """The leader's TorchJobRunner: dispatch the job, then train it as rank 0 of the world."""

    world: TorchWorld

    def run(self, job: TorchJob) -> TorchRunSummary:
        from e2eai.training.ddp_loop import run_worker

        return run_worker(job, checkpoints=self.world.dispatch(job))
