"""Cluster training: TrainJob / PyTorchJob objects valid against their CRDs, and the
create-and-wait logic against kmock's in-memory Kubernetes API (the test plays the controller).

The multi-node run itself (two torchrun nodes, c10d, S3 checkpoints, a killed node) is in
test_training_multinode.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crds import validator
from kube import emulated_custom_objects_api
from synthetic import synthetic_frame

from e2eai.config import Settings
from e2eai.errors import TrainingJobError
from e2eai.pipeline.cluster_training import (
    PYTORCHJOB,
    TRAINJOB,
    create_and_wait,
    job_manifest,
    pytorchjob_manifest,
    train_on_cluster,
    trainjob_manifest,
)
from e2eai.serving.processes import free_port

TRAINJOB_CRD = "trainer.kubeflow.org_trainjobs.yaml"
PYTORCHJOB_CRD = "kubeflow.org_pytorchjobs.yaml"


def _validator(filename: str) -> Any:
    return validator(filename)


def _settings(
    tmp_path: Path, backend: str = "trainjob", family: str = "hist_gb", nodes: int = 2
) -> Settings:
    return Settings(
        home=tmp_path / "home",
        artifacts={"uri": str(tmp_path / "store")},
        registry={"database_url": f"sqlite:///{tmp_path / 'registry.db'}"},
        pipeline={"training_backend": backend, "namespace": "ml", "training_poll_seconds": 0.05,
                  "training_timeout_seconds": 60, "image": "registry.example.org/e2eai:1",
                  "training_nodes": nodes},
        training={"family": family, "train_start": "2013-01-01", "train_end": "2013-02-28",
                  "validation_days": 10, "holdout_days": 14, "workers": 1},
    )  # fmt: skip


# The reserved variables the Trainer's torch plugin injects and refuses from a TrainJob.
TORCHRUN_RESERVED = {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR",
                     "PET_MASTER_PORT"}  # fmt: skip


def _assert_node_command(command: list[str], name: str, request_key: str) -> None:
    """torchrun with c10d at the master the controller names, around the cluster entry."""
    assert command[0] == "torchrun"
    assert "--rdzv-backend=c10d" in command
    assert "--rdzv-endpoint=$(PET_MASTER_ADDR):$(PET_MASTER_PORT)" in command
    assert f"--rdzv-id={name}" in command
    # No in-place elastic restarts: the controller restarts pods (cluster_training docstring).
    assert "--max-restarts=0" in command
    # Node counts and ranks come from PET_* (set by the controller), never from the command.
    assert not [
        arg for arg in command if re.match(r"--(nnodes|nproc[-_]per[-_]node|node[-_]rank)", arg)
    ]
    assert command[-3:] == ["-m", "e2eai.pipeline.cluster_entry", request_key]


def test_trainjob_is_valid_against_the_trainjob_crd(tmp_path):
    manifest = trainjob_manifest(
        _settings(tmp_path, family="torch_mlp"), "e2eai-train-abc", "pipeline-training/x/r.json"
    )
    _validator(TRAINJOB_CRD).validate(manifest)
    trainer = manifest["spec"]["trainer"]
    assert trainer["image"] == "registry.example.org/e2eai:1"
    # A torch family trains on pipeline.training_nodes nodes of training.workers processes.
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 1)
    _assert_node_command(trainer["command"], "e2eai-train-abc", "pipeline-training/x/r.json")
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert not TORCHRUN_RESERVED & set(env)  # the Trainer's webhook would reject the job
    # The job trains in its pod: it must not create another job itself.
    assert env["E2EAI_PIPELINE__TRAINING_BACKEND"] == "local"
    assert env["E2EAI_TRAINING__FAMILY"] == "torch_mlp"
    assert env["E2EAI_PIPELINE__TRAINING_NODES"] == "2"
    assert manifest["spec"]["runtimeRef"]["name"] == "torch-distributed"


def test_the_node_count_follows_the_setting_and_the_family(tmp_path):
    validate = _validator(TRAINJOB_CRD).validate
    three = trainjob_manifest(_settings(tmp_path, family="torch_mlp", nodes=3), "n", "k")
    validate(three)
    assert three["spec"]["trainer"]["numNodes"] == 3
    # A family that does not train through DDP would leave extra nodes waiting on its leader.
    sklearn = trainjob_manifest(_settings(tmp_path, family="hist_gb", nodes=3), "n", "k")
    validate(sklearn)
    assert (
        sklearn["spec"]["trainer"]["numNodes"],
        sklearn["spec"]["trainer"]["numProcPerNode"],
    ) == (1, 1)


def test_a_nodes_setting_below_one_is_refused(tmp_path):
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="training_nodes"):
        _settings(tmp_path, nodes=0)


def test_pytorchjob_is_valid_against_the_pytorchjob_crd(tmp_path):
    settings = _settings(tmp_path, "pytorchjob", family="torch_mlp", nodes=3)
    manifest = pytorchjob_manifest(settings, "e2eai-train-abc", "k")
    _validator(PYTORCHJOB_CRD).validate(manifest)
    replicas = manifest["spec"]["pytorchReplicaSpecs"]
    # Master (rank 0) + Workers: the operator counts all of them into PET_NNODES.
    assert {role: spec["replicas"] for role, spec in replicas.items()} == {"Master": 1, "Worker": 2}
    assert manifest["spec"]["nprocPerNode"] == "1"  # → PET_NPROC_PER_NODE
    for spec in replicas.values():
        # A failed pod restarts and resumes from the checkpoint in the store.
        assert spec["restartPolicy"] == "OnFailure"
        [container] = spec["template"]["spec"]["containers"]
        assert container["name"] == "pytorch"
        assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
        # The operator derives MASTER_PORT / PET_MASTER_PORT from the port of this name.
        assert container["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]
        _assert_node_command(container["command"], "e2eai-train-abc", "k")
    assert manifest["spec"]["runPolicy"]["backoffLimit"] >= 1
    # One node: the Master alone, no Worker replica spec.
    single = pytorchjob_manifest(_settings(tmp_path, "pytorchjob", nodes=1), "n", "k")
    _validator(PYTORCHJOB_CRD).validate(single)
    assert set(single["spec"]["pytorchReplicaSpecs"]) == {"Master"}


def test_the_backend_setting_picks_the_kind(tmp_path):
    assert job_manifest(_settings(tmp_path, "trainjob"), "n", "k")["kind"] == "TrainJob"
    assert job_manifest(_settings(tmp_path, "pytorchjob"), "n", "k")["kind"] == "PyTorchJob"


def test_the_crd_validation_catches_a_misspelt_field(tmp_path):
    import jsonschema

    manifest = trainjob_manifest(_settings(tmp_path), "n", "k")
    manifest["spec"]["trainer"]["numNode"] = manifest["spec"]["trainer"].pop("numNodes")
    with pytest.raises(jsonschema.ValidationError, match="numNode"):
        _validator(TRAINJOB_CRD).validate(manifest)


# -- create and wait against an in-memory API server ------------------------------------------


@pytest.fixture
def custom_objects_api() -> Iterator[Any]:
    """A CustomObjectsApi talking to kmock's KubernetesEmulator on 127.0.0.1."""
    resources = {f"{k.group}/{k.version}/{k.plural}": k.kind for k in (TRAINJOB, PYTORCHJOB)}
    with emulated_custom_objects_api(resources) as api:
        yield api


class FakeController(threading.Thread):
    """Plays the Trainer / training operator: waits for the job, optionally runs it, sets status."""

    def __init__(self, api: Any, kind: Any, name: str, condition: str, message: str = "",
                 run: bool = False) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.api, self.kind, self.name = api, kind, name
        self.condition, self.message, self.run_job = condition, message, run
        self.seen: dict[str, Any] | None = None
        self.job_output: subprocess.CompletedProcess[str] | None = None

    def _coordinates(self) -> dict[str, str]:
        k = self.kind
        return {"group": k.group, "version": k.version, "namespace": "ml", "plural": k.plural}

    def run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        deadline = time.monotonic() + 30
        while self.seen is None and time.monotonic() < deadline:
            try:
                self.seen = self.api.get_namespaced_custom_object(
                    name=self.name, **self._coordinates()
                )
            except ApiException:
                time.sleep(0.05)
        if self.seen is None:
            return
        if self.run_job:  # what the pod would do: the job's command with the job's env
            trainer = self.seen["spec"]["trainer"]
            assert trainer["numNodes"] == 1, "this controller runs single-node jobs"
            env = {**os.environ, **{e["name"]: e["value"] for e in trainer["env"]}}
            # What the Trainer's torch plugin injects for node 0 of a one-node job.
            env.update(PET_NNODES="1", PET_NPROC_PER_NODE=str(trainer["numProcPerNode"]),
                       PET_NODE_RANK="0", PET_MASTER_ADDR="127.0.0.1",
                       PET_MASTER_PORT=str(free_port()))  # fmt: skip
            # The kubelet expands $(VAR) from the container's environment.
            command = [re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], arg)
                       for arg in trainer["command"]]  # fmt: skip
            assert command[0] == "torchrun"
            command[0] = str(Path(sys.executable).with_name("torchrun"))
            self.job_output = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=300, check=False
            )
            if self.job_output.returncode != 0:
                self.condition, self.message = "Failed", self.job_output.stderr[-2000:]
        status = {"conditions": [
            {"type": "Created", "status": "True", "message": "created"},
            {"type": self.condition, "status": "True", "message": self.message},
        ]}  # fmt: skip
        self.api.patch_namespaced_custom_object(
            name=self.name, body={"status": status}, **self._coordinates()
        )


@pytest.mark.timeout(60)
def test_create_and_wait_returns_the_finished_trainjob(custom_objects_api, tmp_path):
    manifest = trainjob_manifest(_settings(tmp_path), "e2eai-train-ok", "k")
    controller = FakeController(custom_objects_api, TRAINJOB, "e2eai-train-ok", "Complete")
    controller.start()
    polls: list[dict] = []
    job = create_and_wait(
        custom_objects_api, manifest, timeout_seconds=30, poll_seconds=0.05, on_poll=polls.append
    )
    controller.join(5)
    assert job["spec"]["trainer"]["command"] == manifest["spec"]["trainer"]["command"]
    assert job["status"]["conditions"][-1]["type"] == "Complete"
    assert len(polls) >= 1 and "status" not in polls[0]  # it really waited for the status


@pytest.mark.timeout(60)
def test_a_failed_pytorchjob_raises_with_the_controllers_message(custom_objects_api, tmp_path):
    manifest = pytorchjob_manifest(_settings(tmp_path, "pytorchjob"), "e2eai-train-bad", "k")
    controller = FakeController(
        custom_objects_api, PYTORCHJOB, "e2eai-train-bad", "Failed", "OOMKilled on master-0"
    )
    controller.start()
    with pytest.raises(TrainingJobError, match="PyTorchJob ml/e2eai-train-bad failed: OOMKilled"):
        create_and_wait(custom_objects_api, manifest, timeout_seconds=30, poll_seconds=0.05)


@pytest.mark.timeout(60)
def test_a_job_that_never_finishes_is_deleted_at_the_timeout(custom_objects_api, tmp_path):
    from kubernetes.client.exceptions import ApiException

    manifest = trainjob_manifest(_settings(tmp_path), "e2eai-train-slow", "k")
    with pytest.raises(TrainingJobError, match=r"did not finish within 0\.3 s"):
        create_and_wait(custom_objects_api, manifest, timeout_seconds=0.3, poll_seconds=0.05)
    with pytest.raises(ApiException) as gone:
        custom_objects_api.get_namespaced_custom_object(
            TRAINJOB.group, TRAINJOB.version, "ml", TRAINJOB.plural, "e2eai-train-slow"
        )
    assert gone.value.status == 404


@pytest.mark.timeout(300)
def test_train_on_cluster_runs_the_jobs_command_and_brings_back_the_result(
    custom_objects_api, tmp_path
):
    """The controller runs the TrainJob's own command and env, as its pod would."""
    import kubernetes

    settings = _settings(tmp_path)
    frame = synthetic_frame(3000, days=75, seed=5)
    created: list[str] = []
    original = custom_objects_api.create_namespaced_custom_object

    def create_and_start_controller(**kwargs: Any) -> Any:
        created.append(kwargs["body"]["metadata"]["name"])
        FakeController(custom_objects_api, TRAINJOB, created[-1], "Complete", run=True).start()
        return original(**kwargs)

    custom_objects_api.create_namespaced_custom_object = create_and_start_controller
    assert isinstance(custom_objects_api, kubernetes.client.CustomObjectsApi)
    run_dir = tmp_path / "model"
    result = train_on_cluster(settings, frame, None, run_dir, api=custom_objects_api)

    assert result.family == "hist_gb"
    assert (
        result.model_dir.is_relative_to(run_dir)
        and (result.model_dir / "model_info.json").is_file()
    )
    assert result.holdout_path.is_file()
    assert {g.name for g in result.gates} == {
        "beats_logistic_regression",
        "not_worse_than_champion",
    }
    # The request and the result went through the artifact store, under the job's name.
    [name] = created
    stored = sorted(p.relative_to(tmp_path / "store").as_posix()
                    for p in (tmp_path / "store").rglob("*") if p.is_file())  # fmt: skip
    assert f"pipeline-training/{name}/request.json" in stored
    assert f"pipeline-training/{name}/result/training_result.json" in stored
