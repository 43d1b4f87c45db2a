"""A real HTTP server on 127.0.0.1 speaking enough of the Kubeflow Pipelines v2beta1 REST API
for ``kfp.Client`` (experiments, runs, healthz); it records every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest


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
