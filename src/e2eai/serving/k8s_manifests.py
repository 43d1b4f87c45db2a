"""KServe objects for the cluster: the InferenceService (transformer + predictor) and the
ServingRuntime of the e2eai ONNX predictor image.

Every task's model is served by the same ServingRuntime: the predictor reads its task from
``E2EAI_TASK`` (the InferenceService's model env; unset: flights). A task without a feature
store (images, text: the request *is* the model input) has no Feast transformer in front.

Built from kserve's typed ``V1beta1*``/``V1alpha1*`` models and serialised with
``kubernetes.client.ApiClient().sanitize_for_serialization`` (camelCase, Nones dropped):
``.to_dict()`` would give snake_case, which the API server does not accept.

Two canary styles, both in the CRD: ``traffic_percent`` sets
``spec.predictor.canaryTrafficPercent`` (Serverless mode: KServe splits between the latest
and the previous ready revision); ``canary_spec`` adds ``spec.canary: [{predictor,
trafficPercent}]`` (an explicit second predictor, also for RawDeployment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

CanaryStyle = Literal["traffic_percent", "canary_spec"]

MODEL_FORMAT = "e2eai-onnx"
RUNTIME_NAME = "e2eai-onnx-predictor"
VERSION_ANNOTATION = "serving.e2eai.io/model-version"
STABLE_VERSION_ANNOTATION = "serving.e2eai.io/stable-version"
STABLE_URI_ANNOTATION = "serving.e2eai.io/stable-storage-uri"


@dataclass(frozen=True)
class ClusterServing:
    """What the cluster deployment needs beyond the settings."""

    namespace: str = "e2eai"
    name: str = "flight-delay"
    predictor_image: str = "ghcr.io/e2eai/predictor:0.1.0"
    # The predictor image carries the Feast transformer too (images/predictor/Dockerfile).
    transformer_image: str = "ghcr.io/e2eai/predictor:0.1.0"
    service_account: str = "e2eai-s3"  # carries the S3 credentials for the storage initializer
    min_replicas: int = 1
    max_replicas: int = 3


def _serialize(obj: Any) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


def _predictor(
    cluster: ClusterServing,
    storage_uri: str,
    version: str,
    canary_percent: int | None,
    task: str | None = None,
) -> Any:
    from kserve import V1beta1ModelFormat, V1beta1ModelSpec, V1beta1PredictorSpec
    from kubernetes.client import V1EnvVar, V1ResourceRequirements

    return V1beta1PredictorSpec(
        min_replicas=cluster.min_replicas,
        max_replicas=cluster.max_replicas,
        service_account_name=cluster.service_account,
        canary_traffic_percent=canary_percent,
        annotations={VERSION_ANNOTATION: version},
        model=V1beta1ModelSpec(
            model_format=V1beta1ModelFormat(name=MODEL_FORMAT, version="1"),
            runtime=RUNTIME_NAME,
            protocol_version="v2",
            storage_uri=storage_uri,
            env=None if task is None else [V1EnvVar(name="E2EAI_TASK", value=task)],
            resources=V1ResourceRequirements(
                requests={"cpu": "1", "memory": "256Mi"},
                limits={"cpu": "1", "memory": "512Mi"},
            ),
        ),
    )


def _transformer(cluster: ClusterServing) -> Any:
    from kserve import V1beta1TransformerSpec
    from kubernetes.client import V1Container, V1EnvVar, V1ResourceRequirements

    return V1beta1TransformerSpec(
        min_replicas=cluster.min_replicas,
        containers=[
            V1Container(
                name="kserve-container",
                image=cluster.transformer_image,
                command=["python", "-m", "e2eai.serving.transformer"],
                # KServe appends --model_name and --predictor_host itself.
                args=["--http-port", "8080", "--host", "0.0.0.0"],
                # Settings only: the transformer reads Feast's online store through the repo's
                # feature_store.yaml, not through the feature server.
                env=[V1EnvVar(name="E2EAI_HOME", value="/tmp/e2eai")],
                resources=V1ResourceRequirements(
                    requests={"cpu": "500m", "memory": "512Mi"},
                    limits={"cpu": "1", "memory": "1Gi"},
                ),
            )
        ],
    )


def inference_service(
    cluster: ClusterServing,
    *,
    model_name: str,
    storage_uri: str,
    version: str,
    canary: tuple[str, str, int] | None = None,
    style: CanaryStyle = "traffic_percent",
    stable_storage_uri: str | None = None,
    stable_version: str | None = None,
    task: str | None = None,
    transformer: bool = True,
) -> dict[str, Any]:
    """The InferenceService: Feast transformer in front of the ONNX predictor.

    ``storage_uri``/``version`` are the served model; with ``canary=(uri, version, percent)``
    the new version gets ``percent`` of the traffic in the chosen ``style``. ``task`` sets
    the predictor's ``E2EAI_TASK``; ``transformer=False`` leaves the Feast transformer out
    (a task without a feature store).
    """
    from kserve import V1beta1InferenceService, V1beta1InferenceServiceSpec
    from kubernetes.client import V1ObjectMeta

    annotations = {
        STABLE_VERSION_ANNOTATION: stable_version or version,
        STABLE_URI_ANNOTATION: stable_storage_uri or storage_uri,
    }
    spec = V1beta1InferenceServiceSpec(
        predictor=_predictor(cluster, storage_uri, version, None, task),
        transformer=_transformer(cluster) if transformer else None,
    )
    if canary is not None:
        canary_uri, canary_version, percent = canary
        if style == "traffic_percent":
            # Serverless canary: the predictor *is* the new revision; KServe keeps sending
            # 100 - percent to the previous ready revision (the stable one).
            spec.predictor = _predictor(cluster, canary_uri, canary_version, percent, task)
        else:
            spec.canary = [
                {
                    "predictor": _serialize(
                        _predictor(cluster, canary_uri, canary_version, None, task)
                    ),
                    "trafficPercent": percent,
                }
            ]
    isvc = V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name=cluster.name,
            namespace=cluster.namespace,
            annotations=annotations,
            labels={"app.kubernetes.io/part-of": "e2eai", "e2eai.io/model": model_name},
        ),
        spec=spec,
    )
    return _serialize(isvc)


def serving_runtime(cluster: ClusterServing, max_payload_bytes: int = 1_000_000) -> dict[str, Any]:
    """The ServingRuntime that runs ``python -m e2eai.serving.server`` on /mnt/models."""
    from kserve import (
        V1alpha1ServingRuntime,
        V1alpha1ServingRuntimeSpec,
        V1alpha1SupportedModelFormat,
    )
    from kubernetes.client import (
        V1Container,
        V1ContainerPort,
        V1EnvVar,
        V1HTTPGetAction,
        V1ObjectMeta,
        V1Probe,
    )

    probe = V1Probe(
        http_get=V1HTTPGetAction(path="/v2/health/ready", port=8080),
        period_seconds=5,
        failure_threshold=3,
    )
    runtime = V1alpha1ServingRuntime(
        api_version="serving.kserve.io/v1alpha1",
        kind="ServingRuntime",
        metadata=V1ObjectMeta(name=RUNTIME_NAME, namespace=cluster.namespace),
        spec=V1alpha1ServingRuntimeSpec(
            supported_model_formats=[
                V1alpha1SupportedModelFormat(name=MODEL_FORMAT, version="1", auto_select=True)
            ],
            protocol_versions=["v1", "v2", "grpc-v2"],
            containers=[
                V1Container(
                    name="kserve-container",
                    image=cluster.predictor_image,
                    command=["python", "-m", "e2eai.serving.server"],
                    # The storage initializer puts the file named by storageUri here.
                    args=[
                        "--onnx",
                        "/mnt/models/model.onnx",
                        "--served-name",
                        "{{.Name}}",
                        "--http-port",
                        "8080",
                        "--grpc-port",
                        "8081",
                        "--host",
                        "0.0.0.0",
                    ],
                    env=[
                        V1EnvVar(
                            name="E2EAI_SERVING__MAX_PAYLOAD_BYTES", value=str(max_payload_bytes)
                        )
                    ],
                    ports=[V1ContainerPort(container_port=8080, protocol="TCP")],
                    readiness_probe=probe,
                    liveness_probe=V1Probe(
                        http_get=V1HTTPGetAction(path="/v2/health/live", port=8080),
                        period_seconds=10,
                        failure_threshold=3,
                    ),
                )
            ],
        ),
    )
    return _serialize(runtime)
