"""One rollout interface: the same scripted canary — deploy, shift, act on analysis
decisions, roll back, promote — run against local serving (real processes) and against the
cluster controller (kmock's emulated API server), with the same results."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kube import emulated_custom_objects_api
from onnx_fixtures import build_onnx_model

from e2eai.config import ServingSettings, Settings
from e2eai.errors import ServingError
from e2eai.serving.canary_analysis import CanaryDecision
from e2eai.serving.k8s_manifests import CanaryStyle, ClusterServing, inference_service
from e2eai.serving.k8s_rollout import K8sRolloutController
from e2eai.serving.local import LocalServing
from e2eai.serving.processes import free_port, start_predictor
from e2eai.serving.rollout import ModelSource, Rollout

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class RolloutCase:
    rollout: Rollout
    stable_version: str
    first_canary: ModelSource
    second_canary: ModelSource


@contextlib.contextmanager
def _local_case(tmp_path: Path) -> Iterator[RolloutCase]:
    models = tmp_path / "models"
    models.mkdir()
    settings = Settings(
        home=tmp_path / "home",
        serving=ServingSettings(port=free_port(), model_name="flight-delay"),
    )
    serving = LocalServing(settings)
    serving.start(ModelSource.from_path(build_onnx_model(models / "stable.onnx"), "1"))
    try:
        yield RolloutCase(
            serving,
            "1",
            ModelSource.from_path(build_onnx_model(models / "c2.onnx", seed=21), "2"),
            ModelSource.from_path(build_onnx_model(models / "c3.onnx", seed=22), "3"),
        )
    finally:
        serving.stop()


@contextlib.contextmanager
def _k8s_case(style: CanaryStyle) -> Iterator[RolloutCase]:
    resources = {"serving.kserve.io/v1beta1/inferenceservices": "InferenceService"}
    with emulated_custom_objects_api(resources) as api:
        controller = K8sRolloutController(api, "e2eai", "flight-delay", style)
        cluster = ClusterServing(namespace="e2eai", name="flight-delay")
        uri = "s3://e2eai-artifacts/models/flight-delay/v{}/model.onnx"
        controller.apply(
            inference_service(
                cluster, model_name="flight-delay", storage_uri=uri.format(1), version="1"
            )
        )
        yield RolloutCase(
            controller,
            "1",
            ModelSource.from_uri(uri.format(2), "2"),
            ModelSource.from_uri(uri.format(3), "3"),
        )


@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.slow),
        "k8s-traffic_percent",
        "k8s-canary_spec",
    ]
)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RolloutCase]:
    where, _, style = request.param.partition("-")
    with _local_case(tmp_path) if where == "local" else _k8s_case(style) as rollout_case:
        yield rollout_case


def _decision(action: str, before: int, after: int, canary: str) -> CanaryDecision:
    return CanaryDecision.model_validate(
        {
            "action": action,
            "stable_version": "1",
            "canary_version": canary,
            "weight_before": before,
            "weight_after": after,
            "reason": f"scripted {action}",
            "evidence": (),
        }
    )


def test_the_same_script_drives_local_serving_and_the_cluster(case: RolloutCase) -> None:
    rollout = case.rollout
    start = rollout.status()
    assert (start.stable_version, start.canary_version, start.canary_percent) == ("1", None, 0)

    deployed = rollout.deploy(case.first_canary, 10)
    assert (deployed.canary_version, deployed.canary_percent) == ("2", 10)
    assert deployed.stable_percent == 90
    assert deployed.stable_storage_uri == start.stable_storage_uri
    with pytest.raises(ServingError, match="already deployed"):
        rollout.deploy(case.second_canary, 10)
    assert rollout.set_canary_percent(50).canary_percent == 50

    hold = rollout.apply_decision(_decision("hold", 50, 50, "2"))
    assert not hold.applied and rollout.status().canary_percent == 50
    rolled_back = rollout.apply_decision(_decision("rollback", 50, 0, "2"))
    assert rolled_back.applied
    after = rollout.status()
    assert (after.stable_version, after.canary_version, after.canary_percent) == ("1", None, 0)
    assert after.stable_storage_uri == start.stable_storage_uri
    with pytest.raises(ServingError, match="no canary"):
        rollout.promote()

    rollout.deploy(case.second_canary, 10)
    stepped = rollout.apply_decision(_decision("step", 10, 50, "3"))
    assert stepped.applied and rollout.status().canary_percent == 50
    assert rollout.apply_decision(_decision("promote", 50, 100, "3")).applied
    promoted = rollout.status()
    assert (promoted.stable_version, promoted.canary_version) == ("3", None)
    assert promoted.stable_storage_uri != start.stable_storage_uri
    with pytest.raises(ServingError, match="no canary"):
        rollout.rollback("nothing to roll back")


def test_each_rollout_refuses_a_model_it_cannot_serve(tmp_path: Path) -> None:
    """The cluster pulls from object storage; local serving runs files or registry versions."""
    with _k8s_case("canary_spec") as cluster, pytest.raises(ServingError, match="from_uri"):
        cluster.rollout.deploy(ModelSource.from_path(tmp_path / "m.onnx", "2"), 10)
    remote = ModelSource.from_uri("s3://e2eai-artifacts/models/flight-delay/v2/model.onnx", "2")
    with pytest.raises(ServingError, match="not s3://"):
        start_predictor(Settings(home=tmp_path), remote, slot="canary")
