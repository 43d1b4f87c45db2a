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

from e2eai.cli import app
from e2eai.pipeline.images import DEFAULT_COMPONENT_IMAGE

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
    assert set(loaded.component_spec.inputs) == {
        "data_start", "data_end", "train_start", "train_end", "family", "hpo_trials",
        "warm_start_version", "canary_percent", "settings_json",
    }  # fmt: skip


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
