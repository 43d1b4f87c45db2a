"""Cluster side: generated KServe objects validate against the CRDs, and the rollout
controller drives canary percent, promote and rollback through the official kubernetes
client against kmock's emulated API server."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from crds import validator
from kube import emulated_custom_objects_api

from e2eai.serving.k8s_manifests import ClusterServing, inference_service, serving_runtime
from e2eai.serving.k8s_rollout import K8sRolloutController
from e2eai.serving.rollout import ModelSource

CLUSTER = ClusterServing(namespace="e2eai", name="flight-delay")
STABLE_URI = "s3://e2eai-artifacts/models/flight-delay/v3/model.onnx"
CANARY_URI = "s3://e2eai-artifacts/models/flight-delay/v4/model.onnx"


def _validate(obj: dict[str, Any], filename: str) -> None:
    validator(filename).validate(obj)


@pytest.mark.parametrize("style", ["traffic_percent", "canary_spec"])
def test_inference_service_validates_against_the_crd(style):
    stable = inference_service(
        CLUSTER, model_name="flight-delay", storage_uri=STABLE_URI, version="3"
    )
    _validate(stable, "serving.kserve.io_inferenceservices.yaml")
    assert stable["spec"]["predictor"]["model"]["storageUri"] == STABLE_URI
    assert stable["spec"]["predictor"]["model"]["modelFormat"] == {
        "name": "e2eai-onnx",
        "version": "1",
    }
    assert stable["spec"]["transformer"]["containers"][0]["name"] == "kserve-container"
    assert "canaryTrafficPercent" not in stable["spec"]["predictor"]
    with_canary = inference_service(
        CLUSTER,
        model_name="flight-delay",
        storage_uri=STABLE_URI,
        version="3",
        canary=(CANARY_URI, "4", 10),
        style=style,
    )
    _validate(with_canary, "serving.kserve.io_inferenceservices.yaml")
    if style == "traffic_percent":
        assert with_canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
        assert with_canary["spec"]["predictor"]["model"]["storageUri"] == CANARY_URI
    else:
        assert with_canary["spec"]["canary"][0]["trafficPercent"] == 10
        assert with_canary["spec"]["predictor"]["model"]["storageUri"] == STABLE_URI


@pytest.mark.parametrize("task", ["fashion", "support-triage"])
def test_an_image_or_text_task_is_served_by_the_same_runtime(task, monkeypatch):
    """The same ServingRuntime serves every task: the InferenceService names the task in the
    predictor's env (what its settings read) and has no Feast transformer in front."""
    from e2eai.config import Settings
    from e2eai.tasks import load_task

    cluster = ClusterServing(namespace="e2eai", name=task)
    isvc = inference_service(
        cluster,
        model_name=task,
        storage_uri=f"s3://e2eai-artifacts/models/{task}/1",
        version="1",
        canary=(f"s3://e2eai-artifacts/models/{task}/2", "2", 10),
        task=task,
        transformer=False,
    )
    _validate(isvc, "serving.kserve.io_inferenceservices.yaml")
    assert "transformer" not in isvc["spec"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["env"] == [{"name": "E2EAI_TASK", "value": task}]
    assert model["runtime"] == serving_runtime(CLUSTER)["metadata"]["name"]
    assert model["modelFormat"]["name"] in {
        f["name"] for f in serving_runtime(cluster)["spec"]["supportedModelFormats"]
    }
    monkeypatch.setenv("E2EAI_TASK", task)
    assert load_task(Settings()).name == task and not load_task(Settings()).feature_views


def test_invalid_objects_are_caught_by_the_validation():
    import jsonschema

    stable = inference_service(
        CLUSTER, model_name="flight-delay", storage_uri=STABLE_URI, version="3"
    )
    snake = copy.deepcopy(stable)
    snake["spec"]["predictor"]["canary_traffic_percent"] = 10  # what .to_dict() would give
    with pytest.raises(jsonschema.ValidationError, match="canary_traffic_percent"):
        _validate(snake, "serving.kserve.io_inferenceservices.yaml")
    bad_percent = inference_service(
        CLUSTER,
        model_name="flight-delay",
        storage_uri=STABLE_URI,
        version="3",
        canary=(CANARY_URI, "4", 10),
        style="canary_spec",
    )
    bad_percent["spec"]["canary"][0]["trafficPercent"] = 150
    with pytest.raises(jsonschema.ValidationError, match="150"):
        _validate(bad_percent, "serving.kserve.io_inferenceservices.yaml")


def test_serving_runtime_validates_against_the_crd():
    runtime = serving_runtime(CLUSTER)
    _validate(runtime, "serving.kserve.io_servingruntimes.yaml")
    container = runtime["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "e2eai.serving.server"]
    assert "/mnt/models/model.onnx" in container["args"]
    assert runtime["spec"]["supportedModelFormats"][0]["name"] == "e2eai-onnx"


# -- controller against an emulated API server ------------------------------------------------


@pytest.fixture
def custom_objects_api() -> Iterator[Any]:
    """A CustomObjectsApi talking to kmock's KubernetesEmulator on 127.0.0.1."""
    resources = {"serving.kserve.io/v1beta1/inferenceservices": "InferenceService"}
    with emulated_custom_objects_api(resources) as api:
        yield api


@pytest.mark.timeout(60)
@pytest.mark.parametrize("style", ["traffic_percent", "canary_spec"])
def test_controller_steps_promotes_and_rolls_back(custom_objects_api, style):
    controller = K8sRolloutController(custom_objects_api, "e2eai", "flight-delay", style)
    created = controller.apply(
        inference_service(CLUSTER, model_name="flight-delay", storage_uri=STABLE_URI, version="3")
    )
    assert created["spec"]["predictor"]["model"]["storageUri"] == STABLE_URI
    assert controller.status().canary_version is None

    status = controller.deploy(ModelSource.from_uri(CANARY_URI, "4"), 10)
    assert (status.canary_version, status.canary_percent) == ("4", 10)
    assert status.stable_storage_uri == STABLE_URI
    assert controller.set_canary_percent(50).canary_percent == 50
    promoted = controller.promote()
    assert promoted.canary_version is None
    assert (promoted.stable_version, promoted.stable_storage_uri) == ("4", CANARY_URI)
    served = controller.get()["spec"]["predictor"]
    assert served["model"]["storageUri"] == CANARY_URI
    assert served.get("canaryTrafficPercent") is None

    fifth = "s3://e2eai-artifacts/models/flight-delay/v5/model.onnx"
    controller.deploy(ModelSource.from_uri(fifth, "5"), 10)
    rolled = controller.rollback()
    assert rolled.canary_version is None and rolled.stable_version == "4"
    isvc = controller.get()
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == CANARY_URI
    assert not isvc["spec"].get("canary")
    with pytest.raises(Exception, match="no canary"):
        controller.promote()
