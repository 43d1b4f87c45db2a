"""``e2eai pipeline submit`` against a real HTTP server on 127.0.0.1 speaking enough of the
Kubeflow Pipelines v2beta1 REST API for ``kfp.Client``; the server records every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from typer.testing import CliRunner

from e2eai.cli import app


class FakeKfpApi(BaseHTTPRequestHandler):
    """Experiments (list/create/get), runs (create/get) and healthz; nothing else."""

    requests: list[dict[str, Any]]
    experiments: dict[str, dict[str, Any]]

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict[str, Any] | None]:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append(
            {"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body}
        )
        return url.path, body

    def do_GET(self) -> None:
        path, _ = self._record()
        if path == "/apis/v2beta1/healthz":
            self._reply(200, {"multi_user": False})
        elif path == "/apis/v2beta1/experiments":
            self._reply(200, {"experiments": list(self.experiments.values()),
                              "total_size": len(self.experiments)})  # fmt: skip
        elif path.startswith("/apis/v2beta1/experiments/"):
            self._reply(200, self.experiments[path.rsplit("/", 1)[1]])
        else:
            self._reply(404, {"error": f"not faked: GET {path}"})

    def do_POST(self) -> None:
        path, body = self._record()
        assert body is not None
        if path == "/apis/v2beta1/experiments":
            experiment = {**body, "experiment_id": f"exp-{len(self.experiments) + 1}"}
            self.experiments[experiment["experiment_id"]] = experiment
            self._reply(200, experiment)
        elif path == "/apis/v2beta1/runs":
            self._reply(200, {**body, "run_id": "run-0001", "state": "PENDING"})
        else:
            self._reply(404, {"error": f"not faked: POST {path}"})


@pytest.fixture
def kfp_api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    requests: list[dict[str, Any]] = []
    handler = type("Handler", (FakeKfpApi,), {"requests": requests, "experiments": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


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
