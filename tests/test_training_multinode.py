"""Multi-node training as a cluster runs it: two torchrun "nodes" on loopback.

Each node runs the TrainJob's own command (``trainjob_manifest``: torchrun around the
cluster entry, c10d rendezvous), with ``$(…)`` expanded as the kubelet does and the ``PET_*``
variables the Trainer's torch plugin injects (``PET_NNODES=2``, ``PET_NPROC_PER_NODE=1``,
``PET_NODE_RANK``, ``PET_MASTER_ADDR``, ``PET_MASTER_PORT``), the job's ``E2EAI_*``
environment, and a scratch directory of its own (a pod's filesystem is its own: everything
the nodes share goes through moto's S3 server). The data is the real ten-day January window
of the session fixture.

The failure follows a JobSet with a failure policy: when one node's pod dies, the JobSet
recreates all of its Jobs, so the other node's pod is deleted too and both start afresh;
the torch fit then resumes from the newest checkpoint in S3 (module docstring of
``e2eai.pipeline.cluster_training`` on why torch elastic's in-place restart is not used).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from e2eai.config import ArtifactSettings, Settings
from e2eai.errors import ArtifactIntegrityError
from e2eai.pipeline.cluster_training import (
    fetch_result,
    job_prefix,
    stage_request,
    trainjob_manifest,
)
from e2eai.serving.processes import free_port
from e2eai.storage import open_store
from e2eai.training.checkpoints import StoreCheckpoints
from e2eai.training.ddp_loop import state_digest

pytestmark = pytest.mark.timeout(600)
# A job is two torchrun agents and two workers importing torch and the training stack.
slow = pytest.mark.slow

TORCHRUN = Path(sys.executable).with_name("torchrun")  # "torchrun" on the image's PATH
SRC = Path(__file__).resolve().parents[1] / "src"
CHECKPOINT_NAME = re.compile(r"/checkpoints/epoch-(\d{4})-[0-9a-f]{16}\.pt$")
JOINED = re.compile(r"rank=(\d+) world_size=(\d+) joined")
RESUMED = re.compile(r"rank=(\d+) world_size=(\d+) resumed_from_epoch=(\d+)")
FINISHED = re.compile(
    r"rank=(\d+) world_size=(\d+) epochs_run=(\d+) best_epoch=(\d+) "
    r"final_state_sha256=([0-9a-f]{64}) best_state_sha256=([0-9a-f]{64})"
)


def _settings(home: Path, artifacts: ArtifactSettings, epochs: int) -> Settings:
    return Settings(
        home=home,
        artifacts=artifacts,
        registry={"database_url": f"sqlite:///{home / 'registry.db'}"},
        pipeline={"training_backend": "trainjob", "namespace": "ml", "training_nodes": 2,
                  "image": "registry.example.org/e2eai:1",
                  # Also every collective's timeout: a hang fails the test within it.
                  "training_timeout_seconds": 180},
        training={"family": "torch_mlp", "train_start": "2013-01-01", "train_end": "2013-01-07",
                  "validation_days": 2, "holdout_days": 3, "workers": 1, "epochs": epochs,
                  "early_stopping_patience": epochs, "batch_size": 256, "hidden_width": 32},
    )  # fmt: skip


@dataclass
class Node:
    """One node's torchrun (the pod's container) and its log."""

    rank: int
    process: subprocess.Popen[bytes]
    log: Path
    scratch: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def _expand(arg: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion of a container's command from its environment."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), arg)


def _start_node(manifest: dict[str, Any], rank: int, port: int, scratch: Path) -> Node:
    trainer = manifest["spec"]["trainer"]
    # A pod starts from the image's environment plus the job's, not from ours.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("E2EAI_", "PET_"))}
    env.update({e["name"]: e["value"] for e in trainer["env"]})
    env.update(
        PET_NNODES=str(trainer["numNodes"]),
        PET_NPROC_PER_NODE=str(trainer["numProcPerNode"]),
        PET_NODE_RANK=str(rank),
        PET_MASTER_ADDR="127.0.0.1",
        PET_MASTER_PORT=str(port),
        TMPDIR=str(scratch),
        PYTHONPATH=os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p),
        OMP_NUM_THREADS="1",
    )
    command = [_expand(arg, env) for arg in trainer["command"]]
    assert command[0] == "torchrun"
    command[0] = str(TORCHRUN)
    scratch.mkdir(parents=True)
    log = scratch / "node.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Node(rank, process, log, scratch)


def _start_job(manifest: dict[str, Any], port: int, base: Path) -> list[Node]:
    return [_start_node(manifest, rank, port, base / f"node{rank}") for rank in (0, 1)]


def _wait(nodes: list[Node], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for node in nodes:
        try:
            code = node.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop(nodes)
            code = None
        assert code == 0, f"node {node.rank} exited with {code}:\n{node.text()[-4000:]}"


def _stop(nodes: list[Node], sig: int = signal.SIGKILL) -> None:
    """End each node's pod: SIGKILL is a dead pod, SIGTERM a deleted one (grace, then kill).

    torchrun starts its workers in sessions of their own, so a pod's processes are found by
    ancestry, as the container's cgroup would hold them.
    """
    import psutil

    for node in nodes:
        if node.process.poll() is not None:  # exited (and reaped): its pid may be reused
            continue
        try:
            agent = psutil.Process(node.process.pid)
            pod = [agent, *agent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in pod if sig == signal.SIGKILL else [agent]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)
        _, alive = psutil.wait_procs(pod, timeout=30)
        for process in alive:  # the grace period is over
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        node.process.wait()


def _checkpoint_epochs(settings: Settings, name: str) -> list[int]:
    keys = open_store(settings.artifacts).list(f"{job_prefix(name)}/torch-jobs/")
    return sorted(int(m[1]) for key in keys if (m := CHECKPOINT_NAME.search(key)))


def _lines(pattern: re.Pattern[str], *nodes: Node) -> list[tuple[str, ...]]:
    return [m.groups() for node in nodes for m in pattern.finditer(node.text())]


@pytest.fixture(scope="module")
def window_frame(flight_window_run):
    """The real training set of the session's ten January days."""
    return flight_window_run.training


@pytest.fixture
def start_job() -> Iterator[Callable[[dict[str, Any], int, Path], list[Node]]]:
    """Starts a job's two nodes; whatever still runs at the end of the test is killed."""
    started: list[Node] = []

    def start(manifest: dict[str, Any], port: int, base: Path) -> list[Node]:
        nodes = _start_job(manifest, port, base)
        started.extend(nodes)
        return nodes

    yield start
    _stop(started)


def test_store_checkpoints_resume_from_the_newest_intact_one(s3_artifact_settings, s3_client):
    """On S3: epoch and digest in the name; a damaged newest checkpoint falls back to the last."""
    checkpoints = StoreCheckpoints(
        open_store(s3_artifact_settings), "job/torch-jobs/ab/checkpoints"
    )
    assert checkpoints.newest() is None
    names = [checkpoints.save(epoch, {"epoch": epoch, "w": torch.full((3,), float(epoch))})
             for epoch in (1, 2, 3)]  # fmt: skip
    assert [n.split("-")[1] for n in names] == ["0001", "0002", "0003"]
    assert checkpoints.newest() == names[2]
    assert torch.equal(checkpoints.load(names[2])["w"], torch.full((3,), 3.0))

    bucket, key = checkpoints.describe(names[2]).removeprefix("s3://").split("/", 1)
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"truncated")  # damaged at rest
    assert checkpoints.newest() == names[1]
    with pytest.raises(ArtifactIntegrityError, match="do not match the sha256"):
        checkpoints.load(names[2])
    assert checkpoints.load(names[1])["epoch"] == 2


@slow
def test_two_nodes_train_one_model_together(
    window_frame, s3_artifact_settings, tmp_path, start_job
):  # fmt: skip
    settings = _settings(tmp_path / "home", s3_artifact_settings, epochs=3)
    name = "e2eai-train-twonodes"
    manifest = trainjob_manifest(settings, name, stage_request(settings, window_frame, None, name))
    assert manifest["spec"]["trainer"]["numNodes"] == 2

    nodes = start_job(manifest, free_port(), tmp_path / "pods")
    _wait(nodes, timeout=300)

    # Both nodes joined one world of two, and each trained the torch job as its own rank.
    assert sorted(_lines(JOINED, *nodes)) == [("0", "2"), ("1", "2")]
    assert sorted(_lines(RESUMED, *nodes)) == [("0", "2", "0"), ("1", "2", "0")]
    finished = {rank: rest for rank, *rest in _lines(FINISHED, *nodes)}
    assert set(finished) == {"0", "1"}
    # DDP kept the replicas bit-identical: same final and best weights on both nodes.
    assert finished["0"] == finished["1"]
    world_size, epochs_run, _, _, best_digest = finished["0"]
    assert (world_size, epochs_run) == ("2", "3")

    result = fetch_result(settings, name, tmp_path / "result")
    # The step gets rank 0's model: the best weights both ranks held.
    weights = torch.load(result.model_dir / "model.pt", weights_only=True)
    assert state_digest(weights) == best_digest
    assert json.loads((result.run_dir / "summary.json").read_text())["world_size"] == 2
    # Written once, by rank 0: the follower's scratch has the job's inputs but no model.
    [follower] = [n for n in nodes if "rank=1 world_size=2 joined" in n.text()]
    assert not list(follower.scratch.rglob("model.pt"))
    assert _checkpoint_epochs(settings, name) == [1, 2, 3]
    # It learned: the holdout ROC-AUC of real flights beats a coin.
    assert result.metrics["model"]["roc_auc"] > 0.6


@slow
def test_a_killed_node_restarts_and_the_job_resumes_from_the_checkpoint(
    window_frame, s3_artifact_settings, tmp_path, start_job
):
    epochs = 12
    settings = _settings(tmp_path / "home", s3_artifact_settings, epochs=epochs)
    name = "e2eai-train-killed"
    manifest = trainjob_manifest(settings, name, stage_request(settings, window_frame, None, name))
    port = free_port()
    first = start_job(manifest, port, tmp_path / "first")
    deadline = time.monotonic() + 240
    while not _checkpoint_epochs(settings, name) and time.monotonic() < deadline:
        assert all(n.process.poll() is None for n in first), [n.text()[-3000:] for n in first]
        time.sleep(0.05)
    assert _checkpoint_epochs(settings, name), "no checkpoint reached the store in time"

    _stop(first[1:], signal.SIGKILL)  # node 1's pod dies: its agent and worker at once
    _stop(first[:1], signal.SIGTERM)  # the JobSet recreates its Jobs: node 0's pod goes too
    saved = max(_checkpoint_epochs(settings, name))
    assert 1 <= saved < epochs, "the kill came too late to test resuming"

    second = start_job(manifest, port, tmp_path / "second")  # fresh pods, same job
    _wait(second, timeout=300)

    # Both restarted ranks resumed from the newest checkpoint, not from scratch.
    assert sorted(_lines(RESUMED, *second)) == [("0", "2", str(saved)), ("1", "2", str(saved))]
    finished = {rank: rest for rank, *rest in _lines(FINISHED, *second)}
    assert finished["0"] == finished["1"] and finished["0"][:2] == ["2", str(epochs)]
    result = fetch_result(settings, name, tmp_path / "result")
    recorded = json.loads((result.run_dir / "summary.json").read_text())
    assert recorded["resumed_from_epoch"] == saved
    assert recorded["epochs_run"] == epochs
    # No epoch lost or repeated across the restart.
    assert [h["epoch"] for h in recorded["history"]] == list(range(epochs + 1))
    assert _checkpoint_epochs(settings, name) == list(range(1, epochs + 1))
    assert (result.model_dir / "model.pt").is_file()


@slow
def test_when_the_leader_fails_every_node_fails_with_its_reason(
    window_frame, s3_artifact_settings, tmp_path, start_job
):
    """Followers wait on the leader; its error ends them too, not the collective timeout."""
    settings = _settings(tmp_path / "home", s3_artifact_settings, epochs=2)
    name = "e2eai-train-noparent"
    # Warm start from a version the (empty) registry does not have: the leader fails after
    # its baselines, while the follower waits for the torch job.
    request_key = stage_request(settings, window_frame, 7, name)
    nodes = start_job(trainjob_manifest(settings, name, request_key), free_port(), tmp_path)
    started = time.monotonic()
    codes = [node.process.wait(timeout=170) for node in nodes]
    assert all(code != 0 for code in codes), codes
    assert time.monotonic() - started < 150  # well inside training_timeout_seconds (180)
    [follower] = [n for n in nodes if "rank=1 world_size=2 joined" in n.text()]
    assert (
        "the leader (rank 0) failed: ModelVersionNotFoundError: no model version 7"
        in follower.text()
    )
    assert not open_store(settings.artifacts).list(f"{job_prefix(name)}/result/")
