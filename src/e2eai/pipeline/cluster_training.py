"""The train step on a cluster: a Kubeflow Trainer TrainJob or a training-operator PyTorchJob.

The step uploads the training frame and the run's settings to the artifact store (S3 on a
cluster), creates the job through the Kubernetes API and waits for it. The job's container
runs ``python -m e2eai.pipeline.cluster_entry REQUEST_KEY``: the same ``run_training`` as a
local run (torch under ``torchrun`` with ``training.workers`` processes in the pod), with the
result directory uploaded back to the store, from where the step downloads it.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2eai.config import Settings
from e2eai.errors import PipelineError, TrainingJobError

ENTRY_MODULE = "e2eai.pipeline.cluster_entry"
REQUEST_FILE = "request.json"
FRAME_FILE = "training_frame.parquet"
RESULT_DIR = "result"


@dataclass(frozen=True)
class JobKind:
    """Where a kind of training job lives in the Kubernetes API and how it reports the end."""

    group: str
    version: str
    plural: str
    kind: str
    succeeded: str  # condition type meaning "finished well"
    failed: str = "Failed"


TRAINJOB = JobKind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", "Complete")
PYTORCHJOB = JobKind("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", "Succeeded")
JOB_KINDS = {"trainjob": TRAINJOB, "pytorchjob": PYTORCHJOB}

_LABELS = {"app.kubernetes.io/part-of": "e2eai", "app.kubernetes.io/component": "training"}


def _entry_command(request_key: str) -> list[str]:
    return ["python", "-m", ENTRY_MODULE, request_key]


def _env(settings: Settings) -> list[dict[str, str]]:
    """The run's settings as E2EAI_* variables, so the job sees exactly what the step saw."""
    from e2eai.serving.processes import settings_env

    env = settings_env(settings)
    env["E2EAI_PIPELINE__TRAINING_BACKEND"] = "local"  # the job itself trains in-pod
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def _resources(settings: Settings) -> dict[str, dict[str, str]]:
    p = settings.pipeline
    amount = {"cpu": p.training_cpu, "memory": p.training_memory}
    return {"requests": dict(amount), "limits": dict(amount)}


def trainjob_manifest(settings: Settings, name: str, request_key: str) -> dict[str, Any]:
    """A TrainJob (trainer.kubeflow.org/v1alpha1) running the training entry on one node.

    ``numProcPerNode`` is 1: the entry starts its own ``torchrun`` with ``training.workers``
    processes inside the pod, exactly as a local run does.
    """
    return {
        "apiVersion": f"{TRAINJOB.group}/{TRAINJOB.version}",
        "kind": TRAINJOB.kind,
        "metadata": {"name": name, "namespace": settings.pipeline.namespace, "labels": _LABELS},
        "spec": {
            "runtimeRef": {
                "name": settings.pipeline.training_runtime,
                "apiGroup": TRAINJOB.group,
                "kind": "ClusterTrainingRuntime",
            },
            "trainer": {
                "image": settings.pipeline.image,
                "command": _entry_command(request_key),
                "numNodes": 1,
                "numProcPerNode": 1,
                "resourcesPerNode": _resources(settings),
                "env": _env(settings),
            },
        },
    }


def pytorchjob_manifest(settings: Settings, name: str, request_key: str) -> dict[str, Any]:
    """A PyTorchJob (kubeflow.org/v1) with one Master replica running the training entry."""
    container = {
        "name": "pytorch",  # the training operator looks for a container of this name
        "image": settings.pipeline.image,
        "command": _entry_command(request_key),
        "env": _env(settings),
        "resources": _resources(settings),
    }
    return {
        "apiVersion": f"{PYTORCHJOB.group}/{PYTORCHJOB.version}",
        "kind": PYTORCHJOB.kind,
        "metadata": {"name": name, "namespace": settings.pipeline.namespace, "labels": _LABELS},
        "spec": {
            "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": {
                        "metadata": {"labels": _LABELS},
                        "spec": {"containers": [container]},
                    },
                }
            },
        },
    }


def job_manifest(settings: Settings, name: str, request_key: str) -> dict[str, Any]:
    """The manifest for ``pipeline.training_backend`` (trainjob or pytorchjob)."""
    backend = settings.pipeline.training_backend
    if backend == "trainjob":
        return trainjob_manifest(settings, name, request_key)
    if backend == "pytorchjob":
        return pytorchjob_manifest(settings, name, request_key)
    raise PipelineError(f"pipeline.training_backend {backend!r} is not a cluster job kind")


def job_outcome(job: dict[str, Any], kind: JobKind) -> tuple[str | None, str]:
    """("succeeded" | "failed" | None while running, the deciding condition's message)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if str(condition.get("status")) != "True":
            continue
        if condition.get("type") == kind.succeeded:
            return "succeeded", condition.get("message", "")
        if condition.get("type") == kind.failed:
            return "failed", condition.get("message") or condition.get("reason", "")
    return None, ""


def create_and_wait(
    api: Any,
    manifest: dict[str, Any],
    *,
    timeout_seconds: float,
    poll_seconds: float,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Create the job with a ``kubernetes.client.CustomObjectsApi`` and wait for its end.

    Returns the finished object; raises TrainingJobError when it failed or did not finish
    within ``timeout_seconds`` (the job is then deleted, so it does not train on unobserved).
    """
    kind = JOB_KINDS[manifest["kind"].lower()]
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    coordinates = {
        "group": kind.group,
        "version": kind.version,
        "namespace": namespace,
        "plural": kind.plural,
    }
    api.create_namespaced_custom_object(body=manifest, **coordinates)
    deadline = time.monotonic() + timeout_seconds
    while True:
        # Re-read: some API servers answer the create without the object.
        job = api.get_namespaced_custom_object(name=name, **coordinates)
        if on_poll is not None:
            on_poll(job)
        outcome, message = job_outcome(job, kind)
        if outcome == "succeeded":
            return job
        if outcome == "failed":
            raise TrainingJobError(f"{kind.kind} {namespace}/{name} failed: {message}")
        if time.monotonic() >= deadline:
            api.delete_namespaced_custom_object(name=name, **coordinates)
            raise TrainingJobError(
                f"{kind.kind} {namespace}/{name} did not finish within {timeout_seconds:g} s "
                "(pipeline.training_timeout_seconds); it was deleted"
            )
        time.sleep(poll_seconds)


def kubernetes_api() -> Any:
    """CustomObjectsApi from the pod's service account, else from ~/.kube/config."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def train_on_cluster(
    settings: Settings,
    frame: Any,
    warm_start_from: int | None,
    run_dir: Path,
    api: Any = None,
) -> Any:
    """Run ``run_training`` as a TrainJob/PyTorchJob and bring its result into ``run_dir``."""
    from e2eai.pipeline.run_settings import settings_to_json
    from e2eai.pipeline.trained_model import load_training_result
    from e2eai.storage import open_store

    store = open_store(settings.artifacts)
    name = f"e2eai-train-{uuid.uuid4().hex[:10]}"
    prefix = f"pipeline-training/{name}"
    with tempfile.TemporaryDirectory() as tmp:
        frame_path = Path(tmp) / FRAME_FILE
        frame.to_parquet(frame_path, index=False)
        store.put_file(f"{prefix}/{FRAME_FILE}", frame_path)
    result_prefix = f"{prefix}/{RESULT_DIR}/"
    request = {
        "settings_json": settings_to_json(settings),
        "frame_key": f"{prefix}/{FRAME_FILE}",
        "warm_start_from": warm_start_from,
        "result_prefix": result_prefix.rstrip("/"),
    }
    request_key = f"{prefix}/{REQUEST_FILE}"
    store.put_bytes(request_key, json.dumps(request).encode())
    create_and_wait(
        api if api is not None else kubernetes_api(),
        job_manifest(settings, name, request_key),
        timeout_seconds=settings.pipeline.training_timeout_seconds,
        poll_seconds=settings.pipeline.training_poll_seconds,
    )
    keys = store.list(result_prefix)
    if not keys:
        raise TrainingJobError(f"{name} finished but left no result under {result_prefix}")
    for key in keys:
        store.download(key, run_dir / key.removeprefix(result_prefix))
    return load_training_result(run_dir)
