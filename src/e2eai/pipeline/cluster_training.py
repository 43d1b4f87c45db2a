"""The train step on a cluster: a Kubeflow Trainer TrainJob or a training-operator PyTorchJob.

The step uploads the training frame and the run's settings to the artifact store (S3 on a
cluster), creates the job through the Kubernetes API and waits for it. The job has
``pipeline.training_nodes`` nodes (pods) for a torch family, one for the others, and every
node runs the same command (:func:`node_command`)::

    torchrun --rdzv-backend=c10d --rdzv-endpoint=$(PET_MASTER_ADDR):$(PET_MASTER_PORT)
             --rdzv-id=<job name> --max-restarts=0 -m e2eai.pipeline.cluster_entry REQUEST_KEY

torchrun starts ``training.workers`` processes per node and joins all of them into one world;
its rank 0 runs ``run_training`` and the others train its torch fits with it
(:mod:`e2eai.training.torch_world`); the result directory goes back to the store, from where
the step downloads it.

How the rendezvous reaches torchrun (Trainer and training-operator sources, checked):

- TrainJob, ``torch-distributed`` runtime: the Trainer does not wrap the command in torchrun;
  its torch plugin injects ``PET_NNODES`` (numNodes), ``PET_NPROC_PER_NODE``
  (numProcPerNode), ``PET_NODE_RANK`` (the pod's Job completion index), ``PET_MASTER_ADDR``
  (``<job>-node-0-0.<job>``) and ``PET_MASTER_PORT`` (29500) into the container, and rejects
  a TrainJob that sets them itself. torchrun reads ``PET_*`` as the defaults of its flags.
- PyTorchJob with Master + Worker replicas (no elasticPolicy): the operator sets
  ``MASTER_ADDR``/``PET_MASTER_ADDR`` (``<job>-master-0``), ``MASTER_PORT``/``PET_MASTER_PORT``
  (the ``pytorchjob-port`` container port), ``RANK``/``PET_NODE_RANK`` (Master 0, Worker
  i+1), ``WORLD_SIZE`` (replicas × nprocPerNode), ``PET_NNODES`` and, from ``nprocPerNode``,
  ``PET_NPROC_PER_NODE``. torchrun replaces RANK and WORLD_SIZE with per-process values.

Both set ``PET_MASTER_ADDR``/``PORT``, so one command serves both: the kubelet expands the
``$(…)`` references from the container's environment, and the rendezvous is c10d (rather
than torchrun's default static one, which needs every node to start within the same
window) with the TCP store on node 0. ``--nnodes`` is ``PET_NNODES`` exactly (min = max): the
batch size per process and the learning-rate schedule depend on the world size, so a job
never continues on fewer nodes.

**Failures.** ``--max-restarts=0``: a dead node is not patched up in place. torch elastic's
in-place re-rendezvous after a peer's death hung here (torch 2.13: the survivor waits for
``role_info`` keys, the restarted node for ``MASTER_ADDR``, until the 60 s store timeout;
see also kubeflow/trainer#1638, pytorch/pytorch#147064), and a survivor blocked in a gloo
collective may not notice the dead peer for a long time. The cluster restarts the job's pods
instead: a JobSet recreates all of its Jobs when one fails (``failurePolicy.maxRestarts`` of
the ClusterTrainingRuntime, which the platform owns), a PyTorchJob restarts failed pods
(``restartPolicy: OnFailure``; the survivors fail too and restart). Every restarted node
rejoins a fresh rendezvous and the torch fit resumes from its newest checkpoint in the store
(:class:`~e2eai.training.checkpoints.StoreCheckpoints`, under the job's prefix), which rank 0
writes after every epoch.
"""

from __future__ import annotations

import copy
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

PYTORCHJOB_PORT = 23456
"""The training operator's default ``pytorchjob-port``: its MASTER_PORT / PET_MASTER_PORT."""
POD_RESTARTS = 3
"""PyTorchJob ``runPolicy.backoffLimit``: pod restarts (each resuming from the checkpoint)
before the job is declared failed."""


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


def node_command(name: str, request_key: str) -> list[str]:
    """What every node of job ``name`` runs: torchrun around the entry (module docstring).

    ``--nnodes``, ``--nproc-per-node`` and ``--node-rank`` come from the ``PET_*``
    variables the Trainer / training operator set; ``$(…)`` is expanded by the kubelet.
    """
    return [
        "torchrun",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=$(PET_MASTER_ADDR):$(PET_MASTER_PORT)",
        f"--rdzv-id={name}",
        "--max-restarts=0",
        "-m",
        ENTRY_MODULE,
        request_key,
    ]


def job_shape(settings: Settings) -> tuple[int, int]:
    """(nodes, processes per node) of the cluster job for ``training.family``.

    Only a torch family trains across processes; any other trains in the leader alone, and
    more nodes or processes would only wait for it.
    """
    from e2eai.training.families import family

    if family(settings.training.family).trains_with_ddp:
        return settings.pipeline.training_nodes, settings.training.workers
    return 1, 1


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
    """A TrainJob (trainer.kubeflow.org/v1alpha1): :func:`job_shape` nodes of the runtime.

    The runtime turns ``numNodes``/``numProcPerNode`` into the ``PET_*`` variables that
    torchrun on each node reads.
    """
    nodes, processes = job_shape(settings)
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
                "command": node_command(name, request_key),
                "numNodes": nodes,
                "numProcPerNode": processes,
                "resourcesPerNode": _resources(settings),
                "env": _env(settings),
            },
        },
    }


def pytorchjob_manifest(settings: Settings, name: str, request_key: str) -> dict[str, Any]:
    """A PyTorchJob (kubeflow.org/v1): a Master and :func:`job_shape` − 1 Worker replicas.

    Every replica runs the same command; a failed pod restarts (``OnFailure``) and resumes
    from the checkpoint, up to POD_RESTARTS times.
    """
    nodes, processes = job_shape(settings)
    container = {
        "name": "pytorch",  # the training operator looks for a container of this name
        "image": settings.pipeline.image,
        "command": node_command(name, request_key),
        "env": _env(settings),
        "resources": _resources(settings),
        # The operator reads MASTER_PORT / PET_MASTER_PORT from the port of this name.
        "ports": [{"name": "pytorchjob-port", "containerPort": PYTORCHJOB_PORT}],
    }
    template = {"metadata": {"labels": _LABELS}, "spec": {"containers": [container]}}
    replicas = {"Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": template}}
    if nodes > 1:
        replicas["Worker"] = {
            "replicas": nodes - 1,
            "restartPolicy": "OnFailure",
            "template": copy.deepcopy(template),
        }
    return {
        "apiVersion": f"{PYTORCHJOB.group}/{PYTORCHJOB.version}",
        "kind": PYTORCHJOB.kind,
        "metadata": {"name": name, "namespace": settings.pipeline.namespace, "labels": _LABELS},
        "spec": {
            "nprocPerNode": str(processes),
            "runPolicy": {"backoffLimit": POD_RESTARTS, "cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": replicas,
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


def job_prefix(name: str) -> str:
    """The store folder of cluster job ``name``: request, frame, shared files, result."""
    return f"pipeline-training/{name}"


def stage_request(settings: Settings, frame: Any, warm_start_from: int | None, name: str) -> str:
    """Store the training frame and the request job ``name`` runs; returns the request key."""
    from e2eai.pipeline.run_settings import settings_to_json
    from e2eai.storage import open_store

    store = open_store(settings.artifacts)
    prefix = job_prefix(name)
    with tempfile.TemporaryDirectory() as tmp:
        frame_path = Path(tmp) / FRAME_FILE
        frame.to_parquet(frame_path, index=False)
        store.put_file(f"{prefix}/{FRAME_FILE}", frame_path)
    request = {
        "settings_json": settings_to_json(settings),
        "frame_key": f"{prefix}/{FRAME_FILE}",
        "warm_start_from": warm_start_from,
        "result_prefix": f"{prefix}/{RESULT_DIR}",
        # Where the job's nodes share torch inputs and checkpoints; a restarted pod of the
        # same job reads the same request, so it finds them.
        "shared_prefix": prefix,
    }
    request_key = f"{prefix}/{REQUEST_FILE}"
    store.put_bytes(request_key, json.dumps(request).encode())
    return request_key


def fetch_result(settings: Settings, name: str, run_dir: Path) -> Any:
    """The TrainingResult job ``name`` uploaded, downloaded into ``run_dir``."""
    from e2eai.pipeline.trained_model import load_training_result
    from e2eai.storage import open_store

    store = open_store(settings.artifacts)
    result_prefix = f"{job_prefix(name)}/{RESULT_DIR}/"
    keys = store.list(result_prefix)
    if not keys:
        raise TrainingJobError(f"{name} finished but left no result under {result_prefix}")
    for key in keys:
        store.download(key, run_dir / key.removeprefix(result_prefix))
    return load_training_result(run_dir)


def train_on_cluster(
    settings: Settings,
    frame: Any,
    warm_start_from: int | None,
    run_dir: Path,
    api: Any = None,
) -> Any:
    """Run ``run_training`` as a TrainJob/PyTorchJob and bring its result into ``run_dir``."""
    name = f"e2eai-train-{uuid.uuid4().hex[:10]}"
    request_key = stage_request(settings, frame, warm_start_from, name)
    create_and_wait(
        api if api is not None else kubernetes_api(),
        job_manifest(settings, name, request_key),
        timeout_seconds=settings.pipeline.training_timeout_seconds,
        poll_seconds=settings.pipeline.training_poll_seconds,
    )
    return fetch_result(settings, name, run_dir)
