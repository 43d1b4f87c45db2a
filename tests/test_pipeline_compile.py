"""``e2eai pipeline compile``: IR YAML that kfp's own tooling loads back, with the right DAG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from typer.testing import CliRunner

from e2eai import __version__
from e2eai.cli import app
from e2eai.config import Settings
from e2eai.pipeline.images import COMPONENT_IMAGE_NAME, DEFAULT_COMPONENT_IMAGE, IMAGE_ENV

ROOT = Path(__file__).resolve().parents[1]
PARAMETERS = {
    "task", "data_start", "data_end", "train_start", "train_end", "family", "hpo_trials",
    "warm_start_version", "canary_percent", "settings_json",
}  # fmt: skip
# A reference a registry could hold: host with port, nested path, tag and digest.
CUSTOM_IMAGE = "registry.example.org:5000/team/e2eai:2.0.1@sha256:" + "ab" * 32

DATA_AND_TRAINING = {
    "configure-run",
    "prepare-data",
    "build-features",
    "retrieve-training-set",
    "tune-hyperparameters",
    "train-model",
    "evaluate-model",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("ir") / "training.yaml"
    result = CliRunner().invoke(app, ["pipeline", "compile", "--output", str(output), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"] == str(output)
    return output


@pytest.fixture(scope="module")
def spec(compiled) -> pipeline_spec_pb2.PipelineSpec:
    return json_format.ParseDict(
        yaml.safe_load(compiled.read_text()), pipeline_spec_pb2.PipelineSpec()
    )


def _branches(spec) -> dict[str, pipeline_spec_pb2.PipelineTaskSpec]:
    """Conditional tasks anywhere in the pipeline (If/Else nest them in a branches DAG)."""
    dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
    return {
        task.trigger_policy.condition: task
        for dag in dags
        for task in dag.tasks.values()
        if task.trigger_policy.condition
    }


def test_kfp_loads_the_package_as_a_pipeline_with_its_parameters(compiled):
    from kfp import components

    loaded = components.load_component_from_file(str(compiled))
    assert loaded.name == "e2eai-training"
    assert set(loaded.component_spec.inputs) == PARAMETERS


def test_parameter_defaults(spec):
    params = spec.root.input_definitions.parameters
    assert params["canary_percent"].default_value.number_value == 10
    assert params["warm_start_version"].default_value.number_value == 0
    assert params["hpo_trials"].default_value.number_value == -1
    assert params["settings_json"].default_value.string_value == "{}"
    assert params["family"].default_value.string_value == ""
    kinds = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
    assert params["canary_percent"].parameter_type == kinds.NUMBER_INTEGER
    assert params["data_start"].parameter_type == kinds.STRING


def test_tasks_and_edges(spec):
    tasks = spec.root.dag.tasks
    assert set(tasks) >= DATA_AND_TRAINING

    def deps(name: str) -> set[str]:
        return set(tasks[name].dependent_tasks)

    assert deps("prepare-data") == {"configure-run"}
    assert deps("build-features") == {"configure-run", "prepare-data"}
    assert deps("retrieve-training-set") == {"configure-run", "prepare-data", "build-features"}
    assert deps("train-model") == {"configure-run", "retrieve-training-set", "tune-hyperparameters"}
    assert deps("evaluate-model") == {"configure-run", "train-model"}
    # Every step gets the settings the configure step resolved, not the raw parameter.
    settings_input = tasks["train-model"].inputs.parameters["settings_json"]
    assert settings_input.task_output_parameter.producer_task == "configure-run"
    frame = tasks["train-model"].inputs.artifacts["training_frame"].task_output_artifact
    assert (frame.producer_task, frame.output_artifact_key) == (
        "retrieve-training-set", "training_frame",
    )  # fmt: skip


def test_register_and_deploy_only_run_when_the_gates_pass(spec):
    branches = _branches(spec)
    passed = "inputs.parameter_values['pipelinechannel--evaluate-model-Output'] == true"
    assert set(branches) == {passed, f"!({passed})"}
    gates_passed, gates_failed = branches[passed], branches[f"!({passed})"]
    assert gates_passed.task_info.name == "gates-passed"
    [branching] = [
        t
        for t in spec.root.dag.tasks.values()
        if t.component_ref.name.startswith("comp-condition-branches")
    ]
    assert "evaluate-model" in branching.dependent_tasks

    inner = spec.components[gates_passed.component_ref.name].dag.tasks
    assert set(inner) == {"export-onnx", "register-model", "deploy-canary"}
    assert set(inner["register-model"].dependent_tasks) == {"export-onnx"}
    assert set(inner["deploy-canary"].dependent_tasks) == {"register-model"}
    version = inner["deploy-canary"].inputs.parameters["model_version"]
    assert version.task_output_parameter.producer_task == "register-model"

    otherwise = spec.components[gates_failed.component_ref.name].dag.tasks
    assert set(otherwise) == {"report-gate-failure"}
    # Nothing outside the two branches registers or deploys.
    assert not {"register-model", "deploy-canary"} & set(spec.root.dag.tasks)


def test_side_effect_steps_are_not_cached_by_kfp(spec):
    tasks = spec.root.dag.tasks
    for name in ("prepare-data", "train-model", "evaluate-model"):
        assert tasks[name].caching_options.enable_cache is False, name
    [gates_passed] = [t for t in _branches(spec).values() if t.task_info.name == "gates-passed"]
    for name, task in spec.components[gates_passed.component_ref.name].dag.tasks.items():
        assert task.caching_options.enable_cache is False, name


def test_every_executor_uses_the_project_image_without_installing_kfp(spec):
    executors = spec.deployment_spec["executors"]
    assert len(executors) == 11
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == DEFAULT_COMPONENT_IMAGE, name
        assert "pip install" not in " ".join(container["command"]), name


def test_image_comes_from_the_pipeline_image_setting(tmp_path):
    output = tmp_path / "custom.yaml"
    env = {**os.environ, "E2EAI_PIPELINE__IMAGE": "registry.example.org/e2eai:test"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "e2eai"), "pipeline", "compile", "-o", str(output)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    executors = yaml.safe_load(output.read_text())["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {
        "registry.example.org/e2eai:test"
    }


def test_every_run_parameter_has_the_description_the_docstring_gives(spec):
    """The Kubeflow UI shows these beside the run parameters; KFP takes them from the
    pipeline function's docstring (its Args section)."""
    params = spec.root.input_definitions.parameters
    described = {name for name, p in params.items() if p.description.strip()}
    assert described == set(params) == PARAMETERS, f"{len(described)} of {len(params)}"
    # Each says what the parameter's special values mean, not just its name.
    assert "0 skips" in params["hpo_trials"].description
    assert "-1 keeps" in params["hpo_trials"].description
    assert "0 trains from" in params["warm_start_version"].description
    assert "YYYY-MM-DD" in params["train_end"].description
    assert "1 to 100" in params["canary_percent"].description
    assert len({p.description for p in params.values()}) == len(params)


def _executors(package: Path) -> dict:
    return yaml.safe_load(package.read_text())["deploymentSpec"]["executors"]


def test_compile_image_sets_every_executor_and_its_settings(tmp_path):
    output = tmp_path / "custom.yaml"
    result = CliRunner().invoke(
        app, ["pipeline", "compile", "-o", str(output), "--image", CUSTOM_IMAGE, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["image"] == CUSTOM_IMAGE
    executors = _executors(output)
    assert len(executors) == 11
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == CUSTOM_IMAGE, name
        # The step's settings name the image it runs in (cluster training jobs use it).
        assert {"name": IMAGE_ENV, "value": CUSTOM_IMAGE} in container["env"], name
    # Still a PipelineSpec kfp accepts: the rewrite kept the schema and the header.
    spec = json_format.ParseDict(
        yaml.safe_load(output.read_text()), pipeline_spec_pb2.PipelineSpec()
    )
    assert spec.pipeline_info.name == "e2eai-training"
    assert output.read_text().startswith("# PIPELINE DEFINITION")


def test_the_image_default_is_the_pipeline_image_setting_default(compiled):
    assert {e["container"]["image"] for e in _executors(compiled).values()} == {
        DEFAULT_COMPONENT_IMAGE
    }
    # One place: the pipeline.image setting's default is the compile default.
    assert Settings.model_fields["pipeline"].default.image == DEFAULT_COMPONENT_IMAGE
    assert f"{COMPONENT_IMAGE_NAME}:{__version__}" == DEFAULT_COMPONENT_IMAGE


def test_the_dev_overlay_runs_the_image_compile_defaults_to():
    overlay = yaml.safe_load((ROOT / "manifests/overlays/dev/kustomization.yaml").read_text())
    [entry] = [i for i in overlay["images"] if i["name"] == COMPONENT_IMAGE_NAME]
    named = f"{entry.get('newName', entry['name'])}:{entry['newTag']}"
    assert named == DEFAULT_COMPONENT_IMAGE, (
        f"the dev overlay runs {named}, e2eai pipeline compile defaults to "
        f"{DEFAULT_COMPONENT_IMAGE} (pipeline.image in e2eai.config)"
    )


@pytest.mark.parametrize(
    ("image", "complaint"),
    [
        ("ghcr.io/e2eai/e2eai", "names no fixed version"),
        ("ghcr.io/e2eai/e2eai:latest", "names no fixed version"),
        ("ghcr.io/e2eai/E2EAI:1.0", "is not an image reference"),
        ("ghcr.io/e2eai/e2eai:1.0 --force", "is not an image reference"),
    ],
)
def test_an_image_without_a_fixed_version_is_refused(tmp_path, image, complaint):
    output = tmp_path / "refused.yaml"
    result = CliRunner().invoke(app, ["pipeline", "compile", "-o", str(output), "--image", image])
    assert result.exit_code != 0
    assert complaint in result.output
    assert not output.exists()
