"""``e2eai pipeline submit`` against a real HTTP server on 127.0.0.1 speaking enough of the
Kubeflow Pipelines v2beta1 REST API for ``kfp.Client``; the server records every request."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from e2eai.cli import app


def _submit(host: str, *extra: str):
    return CliRunner().invoke(app, ["pipeline", "submit", "--host", host, *extra, "--json"])


def test_submit_creates_a_run_of_the_compiled_pipeline(kfp_api):
    host, requests = kfp_api
    result = _submit(
        host,
        "--experiment", "nightly",
        "--run-name", "retrain-2013-05",
        "--pipeline-root", "s3://e2eai-pipelines/runs",
        "--param", "family=hist_gb",
        "--param", "canary_percent=20",
        "--param", 'settings_json={"training": {"epochs": 2}}',
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["run_id"] == "run-0001"
    assert answer["url"] == f"{host}/#/runs/details/run-0001"

    [experiment] = [
        r for r in requests if r["method"] == "POST" and r["path"].endswith("/experiments")
    ]
    assert experiment["body"]["display_name"] == "nightly"
    [run] = [r["body"] for r in requests if r["method"] == "POST" and r["path"].endswith("/runs")]
    assert run["display_name"] == "retrain-2013-05"
    assert run["experiment_id"] == "exp-1"
    assert run["runtime_config"]["pipeline_root"] == "s3://e2eai-pipelines/runs"
    assert run["runtime_config"]["parameters"] == {
        "family": "hist_gb",
        "canary_percent": 20,
        "settings_json": '{"training": {"epochs": 2}}',
    }
    # The run carries the whole compiled pipeline: its name, DAG and condition.
    spec = run["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "e2eai-training"
    assert "evaluate-model" in spec["root"]["dag"]["tasks"]
    assert "pipelinechannel--evaluate-model-Output" in json.dumps(spec["components"])


def test_an_existing_experiment_is_reused(kfp_api):
    host, requests = kfp_api
    assert _submit(host, "--experiment", "nightly").exit_code == 0
    assert _submit(host, "--experiment", "nightly").exit_code == 0
    created = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/experiments")]
    assert len(created) == 1


def test_unknown_parameters_are_refused_before_anything_is_sent(kfp_api):
    host, requests = kfp_api
    result = _submit(host, "--param", "famly=hist_gb")
    assert result.exit_code == 2
    assert "unknown pipeline parameters ['famly']" in result.output
    assert not [r for r in requests if r["method"] == "POST"]


def test_pipeline_root_must_be_a_uri(kfp_api):
    host, _ = kfp_api
    result = _submit(host, "--pipeline-root", "runs/pipelines")
    assert result.exit_code == 2
    assert "must be a URI" in result.output


def test_submit_runs_every_step_in_the_image_it_is_given(kfp_api):
    host, requests = kfp_api
    assert _submit(host, "--image", "registry.example.org/e2eai:1.2.3").exit_code == 0
    [run] = [r["body"] for r in requests if r["method"] == "POST" and r["path"].endswith("/runs")]
    executors = run["pipeline_spec"]["deploymentSpec"]["executors"].values()
    images = {e["container"]["image"] for e in executors if "container" in e}
    assert images == {"registry.example.org/e2eai:1.2.3"}
    refused = _submit(host, "--image", "registry.example.org/e2eai")  # no tag: refused
    assert refused.exit_code == 2 and len([r for r in requests if r["path"].endswith("/runs")]) == 1
