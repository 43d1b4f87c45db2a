"""What the Python code creates at run time agrees with the manifests: the InferenceService
and ServingRuntime of e2eai.serving.k8s_manifests, the rollout controller's patches (run
against the manifests' object in kmock's API server, within the manifests' Role), the train
step's TrainJob and PyTorchJob, and the E2EAI_* settings every container is given."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from kube import emulated_custom_objects_api
from rendered_manifests import OVERLAYS, find, rendered

from e2eai.config import PipelineSettings, Settings
from e2eai.manifests.crd_checks import crd_findings
from e2eai.manifests.policy import container_findings, container_sites
from e2eai.pipeline.cluster_training import pytorchjob_manifest, trainjob_manifest
from e2eai.serving.k8s_manifests import (
    VERSION_ANNOTATION,
    ClusterServing,
    inference_service,
    serving_runtime,
)
from e2eai.serving.k8s_rollout import K8sRolloutController
from e2eai.serving.rollout import ModelSource


def subset_mismatches(generated: Any, manifest: Any, path: str = "") -> list[str]:
    """Where ``generated`` is not contained in ``manifest``: every key it sets has the same
    value there; lists of scalars are equal; lists of objects match item by item (the
    manifest may add items, e.g. env variables or volumes). An empty string is no value: the
    typed V1Container behind kserve's model spec serialises its required ``name`` as ""."""
    if isinstance(generated, dict):
        if not isinstance(manifest, dict):
            return [f"{path}: {manifest!r} is not an object"]
        out = []
        for key, value in generated.items():
            if value == "":
                continue
            if key not in manifest:
                out.append(f"{path}.{key}: missing in the manifest (generated {value!r})")
            else:
                out += subset_mismatches(value, manifest[key], f"{path}.{key}")
        return out
    if isinstance(generated, list) and generated and isinstance(generated[0], dict):
        if not isinstance(manifest, list) or len(manifest) < len(generated):
            return [f"{path}: {manifest!r} has fewer items than {generated!r}"]
        out = []
        for i, item in enumerate(generated):
            out += subset_mismatches(item, manifest[i], f"{path}[{i}]")
        return out
    return (
        [] if generated == manifest else [f"{path}: generated {generated!r}, manifest {manifest!r}"]
    )


def cluster_of(overlay: str) -> tuple[ClusterServing, dict[str, Any]]:
    """The ClusterServing the overlay describes, and its InferenceService."""
    isvc = find(overlay, "InferenceService")
    runtime = find(overlay, "ServingRuntime")
    predictor, transformer = isvc["spec"]["predictor"], isvc["spec"]["transformer"]
    cluster = ClusterServing(
        namespace=isvc["metadata"]["namespace"],
        name=isvc["metadata"]["name"],
        predictor_image=runtime["spec"]["containers"][0]["image"],
        transformer_image=transformer["containers"][0]["image"],
        service_account=predictor["serviceAccountName"],
        min_replicas=predictor["minReplicas"],
        max_replicas=predictor["maxReplicas"],
    )
    return cluster, isvc


# -- serving --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_generated_inference_service_is_contained_in_the_manifest(overlay):
    cluster, isvc = cluster_of(overlay)
    generated = inference_service(
        cluster,
        model_name=isvc["metadata"]["labels"]["e2eai.io/model"],
        storage_uri=isvc["spec"]["predictor"]["model"]["storageUri"],
        version=isvc["spec"]["predictor"]["annotations"][VERSION_ANNOTATION],
    )
    assert subset_mismatches(generated, isvc) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_generated_serving_runtime_is_contained_in_the_manifest(overlay):
    cluster, _ = cluster_of(overlay)
    assert subset_mismatches(serving_runtime(cluster), find(overlay, "ServingRuntime")) == []


def test_subset_check_sees_a_difference():
    cluster, isvc = cluster_of("dev")
    isvc["spec"]["transformer"]["containers"][0]["args"] = ["--http-port", "9090"]
    generated = inference_service(
        cluster, model_name="flight-delay", storage_uri="s3://x/model", version="1"
    )
    mismatches = subset_mismatches(generated, isvc)
    assert any(
        m.startswith(".spec.predictor.model.storageUri: generated 's3://x/model'")
        for m in mismatches
    )
    assert any(m.startswith(".spec.transformer.containers[0].args:") for m in mismatches)


class RecordingApi:
    """A CustomObjectsApi that remembers which verbs it was asked for, on what."""

    def __init__(self, api: Any) -> None:
        self.api, self.calls = api, []

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append(("get", group, plural, namespace, name))
        return self.api.get_namespaced_custom_object(group, version, namespace, plural, name)

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.calls.append(("patch", group, plural, namespace, name))
        return self.api.patch_namespaced_custom_object(
            group, version, namespace, plural, name, body
        )


@pytest.fixture
def seeded_api() -> Iterator[Any]:
    with emulated_custom_objects_api(
        {"serving.kserve.io/v1beta1/inferenceservices": "InferenceService"}
    ) as api:
        isvc = find("prod", "InferenceService")
        api.create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", isvc["metadata"]["namespace"], "inferenceservices", isvc
        )
        yield api


def test_rollout_patches_keep_the_manifest_valid_within_its_role(seeded_api, crds):
    """Deploy, promote, deploy, roll back: after each step the object the API server holds
    still validates against the CRD and the hardening policy, and the controller used only
    what the e2eai-rollout Role grants."""
    isvc = find("prod", "InferenceService")
    namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
    api = RecordingApi(seeded_api)
    controller = K8sRolloutController(api, namespace, name)
    stable_uri = isvc["spec"]["predictor"]["model"]["storageUri"]

    def held() -> dict[str, Any]:
        obj = seeded_api.get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name
        )
        obj = {k: v for k, v in obj.items() if k != "status"}
        problems = [str(f) for f in crd_findings(obj, crds) + container_findings(obj)]
        assert problems == []
        return obj

    status = controller.deploy(ModelSource.from_uri("s3://e2eai-prod-artifacts/m/2", "2"), 10)
    assert (status.canary_version, status.canary_percent) == ("2", 10)
    obj = held()
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 10
    # The hardening of the predictor survives the controller's patch of its model.
    assert obj["spec"]["predictor"]["model"]["securityContext"]["readOnlyRootFilesystem"] is True
    controller.promote()
    obj = held()
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["metadata"]["annotations"]["serving.e2eai.io/stable-version"] == "2"
    controller.deploy(ModelSource.from_uri("s3://e2eai-prod-artifacts/m/3", "3"), 10)
    held()
    controller.rollback()
    obj = held()
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://e2eai-prod-artifacts/m/2"
    assert stable_uri != obj["spec"]["predictor"]["model"]["storageUri"]

    [rule] = find("prod", "Role", "e2eai-rollout")["rules"]
    for verb, group, plural, call_namespace, call_name in api.calls:
        assert verb in rule["verbs"]
        assert (group, plural) == (rule["apiGroups"][0], rule["resources"][0])
        assert (call_namespace, call_name) == (namespace, rule["resourceNames"][0])


def test_argo_cd_ignores_exactly_the_fields_the_controller_patches():
    application = find("prod", "Application")
    [isvc_rule] = [
        r for r in application["spec"]["ignoreDifferences"] if r["kind"] == "InferenceService"
    ]
    pointers = set(isvc_rule["jsonPointers"])
    assert {
        "/spec/predictor/canaryTrafficPercent",
        "/spec/predictor/model/storageUri",
        "/spec/predictor/annotations",
        "/metadata/annotations/serving.e2eai.io~1stable-version",
        "/metadata/annotations/serving.e2eai.io~1stable-storage-uri",
    } <= pointers
    assert "RespectIgnoreDifferences=true" in application["spec"]["syncPolicy"]["syncOptions"]


# -- training -------------------------------------------------------------------------------


def _training_settings(overlay: str, job: dict[str, Any], image: str) -> Settings:
    return Settings(
        pipeline=PipelineSettings(
            image=image,
            namespace=job["metadata"]["namespace"],
            training_runtime="torch-distributed",
            training_cpu="2",
            training_memory="4Gi",
        )
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_train_step_trainjob_matches_the_manifest(overlay, crds):
    manifest = find(overlay, "TrainJob")
    settings = _training_settings(overlay, manifest, manifest["spec"]["trainer"]["image"])
    generated = trainjob_manifest(settings, "e2eai-train-run", "pipeline-training/x/request.json")
    assert generated["spec"]["runtimeRef"] == manifest["spec"]["runtimeRef"]
    mine, theirs = manifest["spec"]["trainer"], generated["spec"]["trainer"]
    for key in ("image", "numNodes", "numProcPerNode", "resourcesPerNode"):
        assert theirs[key] == mine[key], key
    assert theirs["command"][:3] == mine["command"][:3]  # the module; the request key is per run
    assert generated["metadata"]["labels"].items() <= manifest["metadata"]["labels"].items()
    # What the step creates validates against the same CRD.
    assert [str(f) for f in crd_findings(generated, crds)] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_train_step_pytorchjob_matches_the_manifest(overlay, crds):
    manifest = find(overlay, "PyTorchJob")
    replicas = manifest["spec"]["pytorchReplicaSpecs"]
    master = replicas["Master"]["template"]["spec"]["containers"][0]
    settings = _training_settings(overlay, manifest, master["image"])
    generated = pytorchjob_manifest(settings, "e2eai-train-run", "pipeline-training/x/r.json")
    generated_replicas = generated["spec"]["pytorchReplicaSpecs"]
    assert set(generated_replicas) <= set(replicas)
    for role, spec in generated_replicas.items():
        container = spec["template"]["spec"]["containers"][0]
        mine = replicas[role]["template"]["spec"]["containers"][0]
        assert container["name"] == mine["name"] == "pytorch"
        assert container["image"] == mine["image"]
        assert container["resources"] == mine["resources"]
        assert container["command"][:3] == mine["command"][:3]
        assert spec["restartPolicy"] == replicas[role]["restartPolicy"]
    for key in ("backoffLimit", "cleanPodPolicy"):
        assert generated["spec"]["runPolicy"][key] == manifest["spec"]["runPolicy"][key]
    assert [str(f) for f in crd_findings(generated, crds)] == []


def test_manifest_trains_on_two_nodes():
    trainjob = find("prod", "TrainJob")
    assert trainjob["spec"]["trainer"]["numNodes"] == 2
    assert trainjob["spec"]["suspend"] is True  # launched by hand or by the train step
    pytorchjob = find("prod", "PyTorchJob")["spec"]["pytorchReplicaSpecs"]
    assert pytorchjob["Master"]["replicas"] + pytorchjob["Worker"]["replicas"] == 2


# -- settings -------------------------------------------------------------------------------

_TRIAL_VALUE = re.compile(r"^\$\{trialParameters\.([A-Za-z0-9_-]+)\}$")


def _trial_samples(experiment: dict[str, Any]) -> dict[str, str]:
    """A value from the search space for each trial parameter (the lower end / first choice)."""
    space = {p["name"]: p["feasibleSpace"] for p in experiment["spec"]["parameters"]}
    samples = {}
    for trial in experiment["spec"]["trialTemplate"]["trialParameters"]:
        feasible = space[trial["reference"]]
        samples[trial["name"]] = feasible["list"][0] if "list" in feasible else feasible["min"]
    return samples


def container_settings_env(overlay: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(where, the E2EAI_* environment) of every e2eai container of the overlay: literal values,
    the settings ConfigMap, search-space samples for Katib's ${trialParameters.*}, and a
    placeholder for values that come from Secrets."""
    config = {
        o["metadata"]["name"]: o.get("data") or {}
        for o in rendered(overlay)
        if o["kind"] == "ConfigMap"
    }
    for obj in rendered(overlay):
        samples = _trial_samples(obj) if obj["kind"] == "Experiment" else {}
        for site in container_sites(obj):
            env: dict[str, str] = {}
            for source in site.container.get("envFrom") or []:
                env.update(config[source["configMapRef"]["name"]])
            for item in site.container.get("env") or []:
                value = item.get("value")
                if value is None:
                    ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
                    value = config[ref["name"]][ref["key"]] if ref else "secret-from-a-Secret"
                match = _TRIAL_VALUE.match(value)
                env[item["name"]] = samples[match.group(1)] if match else value
            settings_env = {k: v for k, v in env.items() if k.startswith("E2EAI_")}
            where = f"{obj['kind']} {obj['metadata']['name']} {'.'.join(map(str, site.path))}"
            yield where, settings_env


def _settings_error(env: dict[str, str]) -> str | None:
    saved = {k: v for k, v in os.environ.items() if k.startswith("E2EAI_")}
    try:
        for key in saved:
            del os.environ[key]
        os.environ.update(env)
        Settings()
    except Exception as exc:
        return str(exc)
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)
    return None


TRANSFORMER = "InferenceService flight-delay spec.transformer.containers.0"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_gets_settings_the_typed_settings_accept(overlay):
    checked = 0
    errors = {}
    for where, env in container_settings_env(overlay):
        checked += 1
        error = _settings_error(env)
        if error:
            errors[where] = error
    assert errors == {}
    assert checked >= 8


def test_transformer_settings_are_accepted():
    # It once carried E2EAI_FEATURES__SERVER_URL, which no setting takes (Settings() refused it).
    [env] = [e for where, e in container_settings_env("prod") if where == TRANSFORMER]
    assert _settings_error(env) is None


def test_settings_check_sees_a_bad_value():
    assert "extra_forbidden" in (_settings_error({"E2EAI_PIPELINE__NO_SUCH": "1"}) or "")
    assert _settings_error({"E2EAI_TRAINING__BATCH_SIZE": "lots"}) is not None
