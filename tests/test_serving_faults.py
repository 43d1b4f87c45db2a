"""Faults that must not become outages or wrong records, on a real local deployment.

Registry-backed versions behind the router: kill -9 of the only stable predictor (and of the
router) under 200 req/s fails no request and the supervisor's replacement serves within 10 s;
a rollback while the stable is down is refused with nothing changed; an archived version is
never deployed; a tampered artifact (``model.onnx`` or ``metrics.json``) is never served;
manual and automatic decisions are recorded as such, with who made them; control routes need
the admin token; nothing listens outside loopback.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from app_fixtures import register_model
from onnx_fixtures import build_onnx_model, v2_body

from e2eai.config import ServingSettings, Settings
from e2eai.errors import ArtifactIntegrityError, ServingError
from e2eai.registry import ModelRegistry
from e2eai.serving.local import LocalServing
from e2eai.serving.processes import free_port, served_by, settings_env
from e2eai.serving.rollout import ModelSource

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
NAME = "flight-delay"


class PacedLoad:
    """``rate`` inference requests per second from a few client threads; every outcome kept."""

    def __init__(self, endpoint: str, rate: float = 200.0, threads: int = 8) -> None:
        self.endpoint = endpoint
        self.interval = threads / rate
        self.outcomes: list[tuple[float, int, str]] = []  # (sent at, status, version)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def _run(self, index: int) -> None:
        body = v2_body()
        next_at = time.monotonic() + index * self.interval / len(self._threads)
        with httpx.Client(base_url=self.endpoint, timeout=30) as client:
            while not self._stop.is_set():
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += self.interval
                sent = time.monotonic()
                try:
                    response = client.post(f"/v2/models/{NAME}/infer", json=body)
                    outcome = (
                        sent,
                        response.status_code,
                        response.headers.get("x-e2eai-version", "?"),
                    )
                except httpx.HTTPError as exc:
                    outcome = (sent, -1, type(exc).__name__)
                with self._lock:
                    self.outcomes.append(outcome)

    @property
    def statuses(self) -> Counter[int]:
        with self._lock:
            return Counter(status for _, status, _ in self.outcomes)

    def __enter__(self) -> PacedLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _stored_file(settings: Settings, version: int, artifact: str) -> Path:
    with ModelRegistry.from_settings(settings) as registry:
        key = registry.get(version).artifact(artifact).key
    return Path(settings.artifacts.uri) / key


def _wait(predicate, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 (gRPC's dual stack)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _health(manager: LocalServing) -> dict[str, bool]:
    return {b["slot"]: b["healthy"] for b in manager.describe()["router"]["backends"]}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "good": build_onnx_model(root / "good.onnx"),
        "other": build_onnx_model(root / "other.onnx", seed=21),
    }


@pytest.fixture
def deployment(tmp_path: Path, models) -> Iterator[tuple[LocalServing, int]]:
    """A registry champion v1 served behind the router; stopped afterwards."""
    settings = Settings(
        home=tmp_path / "home",
        serving=ServingSettings(port=free_port(), model_name=NAME, healthy_wait_seconds=3),
    )
    champion = register_model(settings, models["good"], "champion", tmp_path)
    manager = LocalServing(settings, actor="tester")
    manager.start(ModelSource.from_registry(champion))
    try:
        yield manager, champion
    finally:
        manager.stop()


def test_kill_9_of_the_only_stable_under_200_rps_fails_no_request(deployment) -> None:
    manager, _ = deployment
    stable = manager.state().stable
    server = served_by(stable.pid, stable.http_port)
    assert server is not None and server != stable.pid  # the server runs under its supervisor
    with PacedLoad(manager.state().endpoint) as load:
        time.sleep(2.0)
        os.kill(server, signal.SIGKILL)
        killed = time.monotonic()
        replaced = _wait(
            lambda: (
                served_by(stable.pid, stable.http_port) not in (None, server)
                and _health(manager)["stable"]
            ),
            30,
            "a replacement stable",
        )
        time.sleep(max(0.0, 12.0 - (time.monotonic() - killed)))
    statuses = load.statuses
    sent = sum(statuses.values())
    print(
        f"kill -9 stable: {sent} requests, statuses {dict(statuses)}, replaced in {replaced:.1f} s"
    )
    assert sent > 1500  # ~14 s at 200 req/s
    assert statuses == Counter({200: sent}), statuses
    assert replaced < 10.0
    assert manager.state().stable.pid == stable.pid  # same supervisor, same port


def test_kill_9_of_the_router_is_restarted_on_its_port(deployment) -> None:
    manager, _ = deployment
    state = manager.state()
    router = served_by(state.router_pid, state.router_port)
    assert router is not None and router != state.router_pid
    os.kill(router, signal.SIGKILL)

    def answers() -> bool:
        try:
            response = httpx.post(
                f"{state.endpoint}/v2/models/{NAME}/infer", json=v2_body(), timeout=2
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    assert _wait(answers, 15, "the restarted router answering") < 10.0
    assert served_by(state.router_pid, state.router_port) not in (None, router)


def test_rollback_while_the_stable_is_down_is_refused_and_changes_nothing(
    deployment, models, tmp_path
) -> None:
    manager, champion = deployment
    candidate = register_model(manager.settings, models["other"], "candidate", tmp_path)
    manager.deploy(ModelSource.from_registry(candidate), 50)
    stable = manager.state().stable
    server = psutil.Process(served_by(stable.pid, stable.http_port))
    with PacedLoad(manager.state().endpoint, rate=100, threads=4) as load:
        server.suspend()  # down, and not coming back while the rollback waits
        try:
            _wait(lambda: not _health(manager)["stable"], 10, "the stable marked down")
            with pytest.raises(ServingError, match="not healthy"):
                manager.rollback(reason="test")
            state = manager.state()
            assert state.canary is not None and state.canary.weight == 50
            time.sleep(1.0)
        finally:
            server.resume()
        _wait(lambda: _health(manager)["stable"], 10, "the stable back")
        manager.rollback(reason="stable is back")
        time.sleep(1.0)
    statuses = load.statuses
    print(f"rollback while the stable is down: statuses {dict(statuses)}")
    assert statuses == Counter({200: sum(statuses.values())}), statuses
    with ModelRegistry.from_settings(manager.settings) as registry:
        assert str(registry.get(candidate).stage) == "rejected"
        assert str(registry.get(champion).stage) == "champion"
    outcomes = [(r["action"], r["outcome"]) for r in manager.audit()]
    assert ("rollback", "refused") in outcomes and outcomes[-1] == ("rollback", "done")


def test_an_archived_version_is_never_deployed(deployment, models, tmp_path) -> None:
    manager, champion = deployment
    archived = register_model(manager.settings, models["other"], "candidate", tmp_path)
    with ModelRegistry.from_settings(manager.settings) as registry:
        registry.transition(archived, "archived", "superseded")
    env = {**os.environ, **settings_env(manager.settings)}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "e2eai"),
            "rollout",
            "deploy",
            "--version",
            str(archived),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "archived" in done.stderr and "nothing was changed" in done.stderr
    state = manager.state()
    assert state.canary is None and state.stable.weight == 100
    assert [b["slot"] for b in manager.describe()["router"]["backends"]] == ["stable"]
    logs = manager.settings.home / "serving" / "logs"
    assert not list(logs.glob(f"canary-{archived}-*.log"))  # no predictor was even started
    with httpx.Client(base_url=state.endpoint, timeout=10) as client:
        versions = {
            client.post(f"/v2/models/{NAME}/infer", json=v2_body()).headers["x-e2eai-version"]
            for _ in range(50)
        }
    assert versions == {str(champion)}
    last = manager.audit()[-1]
    assert last["action"] == "deploy" and last["outcome"] == "refused"
    assert last["actor"].endswith("(cli)")


@pytest.mark.parametrize("artifact", ["model.onnx", "metrics.json"])
def test_a_tampered_artifact_is_never_served(deployment, models, tmp_path, artifact) -> None:
    manager, _champion = deployment
    version = register_model(manager.settings, models["other"], "candidate", tmp_path)
    stored = _stored_file(manager.settings, version, artifact)
    stored.write_bytes(stored.read_bytes() + b" ")  # one byte more: the sha256 differs
    with pytest.raises(ArtifactIntegrityError, match=artifact):
        manager.deploy(ModelSource.from_registry(version), 10)
    assert manager.state().canary is None
    with ModelRegistry.from_settings(manager.settings) as registry:
        assert str(registry.get(version).stage) == "candidate"
    # A second deployment from the same registry refuses the tampered version as its stable.
    other = LocalServing(
        manager.settings.model_copy(update={"home": tmp_path / "other-home"}), actor="tester"
    )
    with pytest.raises(ArtifactIntegrityError):
        other.start(ModelSource.from_registry(version), port=free_port())
    assert not (tmp_path / "other-home" / "serving" / "state.json").exists()


def test_manual_and_automatic_decisions_are_recorded_as_such(deployment, models, tmp_path) -> None:
    manager, _champion = deployment
    candidate = register_model(manager.settings, models["other"], "candidate", tmp_path)
    manager.deploy(ModelSource.from_registry(candidate), 10)
    env = {**os.environ, **settings_env(manager.settings)}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "e2eai"),
            "rollout",
            "promote",
            "--reason",
            "release 7",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with ModelRegistry.from_settings(manager.settings) as registry:
        promoted = registry.get(candidate)
        reasons = [t.reason for t in promoted.transitions]
    assert str(promoted.stage) == "champion"
    assert any("promoted by hand: release 7" in r and "(cli)" in r for r in reasons), reasons
    assert not any("after canary analysis" in r for r in reasons)
    record = manager.audit()[-1]
    assert record["action"] == "promote" and record["outcome"] == "done"
    assert record["reason"] == "promoted by hand: release 7"


def test_control_routes_need_the_admin_token_and_nothing_listens_outside_loopback(
    deployment,
) -> None:
    manager, _ = deployment
    state = manager.state()
    for path, body in [
        ("/router/reload", {"reset_samples": True}),
        ("/router/feedback", {"feedback": []}),
        ("/router/drain", {"slot": "stable"}),
    ]:
        assert httpx.post(f"{state.endpoint}{path}", json=body).status_code == 401, path
    assert httpx.get(f"{state.endpoint}/router/samples").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(f"{state.endpoint}/router/samples", headers=wrong).status_code == 401
    assert manager.describe()["router"]["backends"]  # the manager has the token
    token_file = manager.settings.home / "admin_token"
    assert token_file.stat().st_mode & 0o077 == 0  # readable by this account only

    listeners = []
    for leader in [state.router_pid, *(b.pid for b in state.backends())]:
        group = psutil.Process(leader)
        for member in [group, *group.children(recursive=True)]:
            listeners += [
                c.laddr for c in member.connections(kind="inet") if c.status == psutil.CONN_LISTEN
            ]
    assert len(listeners) >= 3  # router, predictor HTTP and gRPC
    assert all(_loopback(addr.ip) for addr in listeners), listeners
