"""Cluster training: TrainJob / PyTorchJob objects valid against their CRDs, and the
create-and-wait logic against kmock's in-memory Kubernetes API (the test plays the controller).
"""

from __future__ import annotations

import os
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

TRAINJOB_CRD = "trainer.kubeflow.org_trainjobs.yaml"
PYTORCHJOB_CRD = "kubeflow.org_pytorchjobs.yaml"


def _validator(filename: str) -> Any:
    return validator(filename)


def _settings(tmp_path: Path, backend: str = "trainjob") -> Settings:
    return Settings(
        home=tmp_path / "home",
        artifacts={"uri": str(tmp_path / "store")},
        registry={"database_url": f"sqlite:///{tmp_path / 'registry.db'}"},
        pipeline={"training_backend": backend, "namespace": "ml", "training_poll_seconds": 0.05,
                  "training_timeout_seconds": 60, "image": "registry.example.org/e2eai:1"},
        training={"family": "hist_gb", "train_start": "2013-01-01", "train_end": "2013-02-28",
                  "validation_days": 10, "holdout_days": 14, "workers": 1},
    )  # fmt: skip


def test_trainjob_is_valid_against_the_trainjob_crd(tmp_path):
    manifest = trainjob_manifest(
        _settings(tmp_path), "e2eai-train-abc", "pipeline-training/x/r.json"
    )
    _validator(TRAINJOB_CRD).validate(manifest)
    trainer = manifest["spec"]["trainer"]
    assert trainer["image"] == "registry.example.org/e2eai:1"
    assert trainer["command"][-2:] == ["e2eai.pipeline.cluster_entry", "pipeline-training/x/r.json"]
    env = {e["name"]: e["value"] for e in trainer["env"]}
    # The job trains in its pod: it must not create another job itself.
    assert env["E2EAI_PIPELINE__TRAINING_BACKEND"] == "local"
    assert env["E2EAI_TRAINING__FAMILY"] == "hist_gb"
    assert manifest["spec"]["runtimeRef"]["name"] == "torch-distributed"


def test_pytorchjob_is_valid_against_the_pytorchjob_crd(tmp_path):
    manifest = pytorchjob_manifest(_settings(tmp_path, "pytorchjob"), "e2eai-train-abc", "k")
    _validator(PYTORCHJOB_CRD).validate(manifest)
    [container] = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
        "containers"
    ]
    assert container["name"] == "pytorch"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}


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
            env = {**os.environ, **{e["name"]: e["value"] for e in trainer["env"]}}
            command = [sys.executable, *trainer["command"][1:]]
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
