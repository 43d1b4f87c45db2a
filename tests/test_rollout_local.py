"""Local serving with real processes: weighted split, kill -9 failover, promote and rollback
under steady load without a failed request, and the ``e2eai rollout`` CLI against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from onnx_fixtures import build_onnx_model, v2_body

from e2eai.config import ServingSettings, Settings
from e2eai.serving.local import LocalServing
from e2eai.serving.processes import free_port, pid_alive, served_by, settings_env, start_router
from e2eai.serving.rollout import ModelSource

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
NAME = "flight-delay"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "good": build_onnx_model(root / "good.onnx"),
        "other": build_onnx_model(root / "other.onnx", seed=21),
    }


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory, models) -> Iterator[LocalServing]:
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        serving=ServingSettings(port=free_port(), model_name=NAME),
    )
    manager = LocalServing(settings)
    manager.start(ModelSource.from_path(models["good"], "1"))
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture
def no_canary(serving: LocalServing) -> Iterator[LocalServing]:
    yield serving
    if serving.state().canary is not None:
        serving.rollback()


class SteadyLoad:
    """Client threads sending inferences back to back; every status is recorded."""

    def __init__(self, endpoint: str, threads: int = 3) -> None:
        self.endpoint = endpoint
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        body = v2_body()
        with httpx.Client(base_url=self.endpoint, timeout=20) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"/v2/models/{NAME}/infer", json=body)
                    self.statuses.append(response.status_code)
                    self.versions.append(response.headers.get("x-e2eai-version", "?"))
                except httpx.HTTPError:
                    self.statuses.append(-1)

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def test_traffic_splits_by_weight(no_canary, models):
    state = no_canary.deploy(ModelSource.from_path(models["other"], "2"), 30)
    body = v2_body()
    with httpx.Client(base_url=state.endpoint, timeout=10) as client:
        versions = [
            client.post(f"/v2/models/{NAME}/infer", json=body).headers["x-e2eai-version"]
            for _ in range(300)
        ]
    canary_share = versions.count("2") / len(versions)
    assert set(versions) == {"1", "2"}
    assert 0.2 < canary_share < 0.4  # 30 % ± ~4 standard errors
    assert no_canary.state().canary.weight == 30


def test_kill_9_of_the_canary_under_load_loses_no_request(no_canary, models):
    state = no_canary.deploy(ModelSource.from_path(models["other"], "2"), 50)
    canary = no_canary.state().canary
    server = served_by(canary.pid, canary.http_port)  # the predictor its supervisor runs
    with SteadyLoad(state.endpoint) as load:
        time.sleep(1.0)
        os.kill(server, signal.SIGKILL)
        killed_at = len(load.statuses)
        time.sleep(1.5)
        during = len(load.statuses)
        deadline = time.monotonic() + 15
        while served_by(canary.pid, canary.http_port) in (None, server):
            assert time.monotonic() < deadline, "the canary was not restarted"
            time.sleep(0.1)
        time.sleep(2.0)  # the router's health check sees it again
    assert killed_at > 10 and during > killed_at + 10
    assert set(load.statuses) == {200}, {s: load.statuses.count(s) for s in set(load.statuses)}
    assert "2" in load.versions[:killed_at] and "2" in load.versions[during:]
    assert "1" in load.versions[killed_at:during]
    assert no_canary.state().canary.pid == canary.pid  # same supervisor, same port
    router = no_canary.describe()["router"]
    assert {b["slot"]: b["healthy"] for b in router["backends"]}["canary"] is True
    no_canary.rollback()
    assert no_canary.state().canary is None


def test_promote_and_rollback_under_steady_load_fail_no_request(serving, models):
    endpoint = serving.state().endpoint
    first_stable_pid = serving.state().stable.pid
    with SteadyLoad(endpoint) as load:
        serving.deploy(ModelSource.from_path(models["other"], "2"), 50)
        time.sleep(0.5)
        serving.promote()
        time.sleep(0.5)
        serving.deploy(ModelSource.from_path(models["good"], "3"), 50)
        time.sleep(0.5)
        serving.rollback()
        time.sleep(0.5)
    assert len(load.statuses) > 50
    assert set(load.statuses) == {200}, {s: load.statuses.count(s) for s in set(load.statuses)}
    state = serving.state()
    assert state.stable.version == "2" and state.canary is None
    assert {"1", "2", "3"} <= set(load.versions)
    assert load.versions[-1] == "2"
    assert not pid_alive(first_stable_pid)  # drained, then stopped


def test_rollout_cli_against_local_serving(serving, models):
    env = {**os.environ, **settings_env(serving.settings)}
    cli = [str(Path(sys.executable).parent / "e2eai")]

    def run(*args: str) -> dict:
        done = subprocess.run(
            [*cli, "rollout", *args, "--json"], env=env, capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    deployed = run("deploy", "--onnx", str(models["good"]), "--canary", "10")
    assert deployed["canary"] == {"version": "good", "weight": 10}
    status = run("status")
    weights = {b["slot"]: b["weight"] for b in status["router"]["backends"]}
    assert weights == {"stable": 90, "canary": 10}
    assert all(b["healthy"] for b in status["router"]["backends"])
    rolled = run("rollback")
    assert rolled["canary"] is None
    done = subprocess.run(
        [*cli, "rollout", "promote"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "no canary is deployed" in done.stderr


def test_router_refuses_a_port_another_process_listens_on(tmp_path: Path) -> None:
    """Starting on a taken port fails clearly instead of talking to someone else's server."""
    import socket

    from e2eai.config import Settings
    from e2eai.errors import ServingError

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        settings = Settings(home=tmp_path, serving={"port": port})
        with pytest.raises(ServingError, match=f"127.0.0.1:{port} is already in use"):
            start_router(settings, tmp_path / "serving" / "state.json", "127.0.0.1", port)
    assert not list((tmp_path / "serving" / "logs").glob("router-*.log"))  # nothing started
