"""Local serving manager: stable and canary ModelServer processes behind the weighted router.

All processes run on loopback ports, detached from the command that started them (so that
``e2eai serve`` can return and ``e2eai rollout …`` can act later from another process); the
state file under ``settings.home/serving/`` says what runs where. A predictor is drained
(weight 0, then no request in flight) before it is stopped, so promote and rollback lose no
request.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from e2eai.errors import ServingError
from e2eai.serving.canary_analysis import (
    CanaryDecision,
    CanaryPolicy,
    decide,
    read_decisions,
    record_decision,
    samples_from_router,
)
from e2eai.serving.state import (
    Backend,
    ServingState,
    Slot,
    clear_state,
    read_state,
    serving_dir,
    state_lock,
    state_path,
    write_state,
)

if TYPE_CHECKING:
    from e2eai.config import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """``E2EAI_*`` variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}
    for key, value in settings.model_dump(mode="json").items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, item in items:
            if item is None:
                continue
            name = f"E2EAI_{key.upper()}" + (f"__{sub.upper()}" if sub else "")
            env[name] = item if isinstance(item, str) else json.dumps(item)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, pid: int | None, timeout: float, log_path: Path | None) -> None:
    """Poll ``url`` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            tail = log_path.read_text()[-2000:] if log_path and log_path.is_file() else ""
            raise ServingError(f"process {pid} exited before {url} was ready:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise ServingError(f"{url} not ready after {timeout:.0f} s (log: {log_path})")


def listens_on(pid: int, port: int) -> bool:
    """True when process ``pid`` (or a child of it) has a listening socket on ``port``."""
    import psutil

    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
        return any(
            conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
            for member in family
            for conn in member.connections(kind="tcp")  # psutil 5.9 name
        )
    except psutil.Error:
        return False


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As asyncio's servers do: a port in TIME_WAIT after a stopped router is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # reap our own exited children
        if reaped == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall through to the signal probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL."""
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class ModelSource:
    """Which model to serve: a registry version (fetched, sha256-verified) or an ONNX path."""

    version: str
    onnx_path: Path | None = None
    registry_version: int | None = None

    @classmethod
    def from_registry(cls, version: int) -> ModelSource:
        return cls(version=str(version), registry_version=version)

    @classmethod
    def from_path(cls, path: Path, version: str | None = None) -> ModelSource:
        return cls(version=version or Path(path).stem, onnx_path=Path(path))


@dataclass(frozen=True)
class PredictorProcess:
    pid: int
    http_port: int
    grpc_port: int
    model_path: str
    log_path: Path


def start_predictor(
    settings: Settings,
    source: ModelSource,
    *,
    slot: str,
    enrich: bool = False,
    stock: bool = False,
    ready_timeout: float = 60.0,
    extra_env: dict[str, str] | None = None,
) -> PredictorProcess:
    """Start one predictor ModelServer process on free loopback ports and wait until ready."""
    from e2eai.serving.predictor import resolve_model_path

    path = resolve_model_path(
        settings,
        version=source.registry_version,
        path=source.onnx_path,
        cache_dir=serving_dir(settings.home) / "models",
    )
    http_port, grpc_port = free_port(), free_port()
    logs = serving_dir(settings.home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{slot}-{source.version}-{http_port}.log"
    command = [
        sys.executable,
        "-m",
        "e2eai.serving.server",
        "--onnx",
        str(path.resolve()),
        "--served-name",
        settings.serving.model_name,
        "--model-version",
        source.version,
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
    ]
    if enrich:
        command.append("--enrich")
    if stock:
        command.append("--stock")
    env = {**os.environ, **settings_env(settings), **(extra_env or {})}
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # detached: outlives the CLI command that started it
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    try:
        wait_until_ready(
            f"http://127.0.0.1:{http_port}/v2/health/ready", process.pid, ready_timeout, log_path
        )
        # free_port() only says the port was free a moment ago: make sure the server that
        # answered is the one just started, not another process that took the port.
        if not listens_on(process.pid, http_port):
            raise ServingError(
                f"port {http_port} answered, but not from the predictor just started "
                f"(pid {process.pid}); see {log_path}"
            )
        if not enrich:
            warm_up(f"http://127.0.0.1:{http_port}", settings)
    except BaseException:
        stop_process(process.pid, grace=2)
        raise
    return PredictorProcess(process.pid, http_port, grpc_port, str(path), log_path)


def warm_up(base_url: str, settings: Settings, requests: int = 30) -> None:
    """Send a few inferences before a predictor takes traffic.

    A cold process answers its first requests slowly (ONNX Runtime and the HTTP stack warm
    up), and a canary that joins at 10 % would carry those outliers into its latency p95.
    """
    import httpx

    from e2eai.serving.client import placeholder_request

    url = f"{base_url}/v2/models/{settings.serving.model_name}/infer"
    payload = placeholder_request(settings.features.windows_hours)
    with httpx.Client(timeout=10.0) as client:
        for _ in range(requests):
            client.post(url, json=payload).raise_for_status()


class LocalServing:
    """Start, shift, promote, roll back and stop the local deployment described by the state."""

    def __init__(self, settings: Settings, policy: CanaryPolicy | None = None) -> None:
        self.settings = settings
        self.policy = policy or CanaryPolicy.from_settings(settings)
        self.state_file = state_path(settings.home)
        self.decisions_file = serving_dir(settings.home) / "canary_decisions.jsonl"

    # -- state -------------------------------------------------------------------------------

    def state(self) -> ServingState:
        state = read_state(self.state_file)
        if state is None or not pid_alive(state.router_pid):
            raise ServingError(
                f"nothing is served from {self.settings.home} (start it with `e2eai serve`)"
            )
        return state

    def _save_and_reload(self, state: ServingState, reset_samples: bool = False) -> None:
        write_state(self.state_file, state)
        self._router_post(state, "/router/reload", {"reset_samples": reset_samples})

    def _router_post(self, state: ServingState, path: str, body: dict[str, Any]) -> Any:
        try:
            response = httpx.post(f"{state.endpoint}{path}", json=body, timeout=30)
        except httpx.HTTPError as exc:
            raise ServingError(f"router at {state.endpoint} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise ServingError(f"router {path}: {response.status_code} {response.text}")
        return response.json()

    def _router_get(self, state: ServingState, path: str) -> Any:
        try:
            response = httpx.get(f"{state.endpoint}{path}", timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ServingError(f"router at {state.endpoint}: {exc}") from exc
        return response.json()

    def _backend(self, slot: Slot, source: ModelSource, weight: int, **kw: Any) -> Backend:
        process = start_predictor(self.settings, source, slot=slot, **kw)
        return Backend(
            slot=slot,
            version=source.version,
            model_path=process.model_path,
            registry_version=source.registry_version,
            http_port=process.http_port,
            grpc_port=process.grpc_port,
            pid=process.pid,
            weight=weight,
        )

    # -- commands ----------------------------------------------------------------------------

    def start(self, source: ModelSource, *, port: int | None = None, **kw: Any) -> ServingState:
        """Serve ``source`` as the stable model behind a new router; return the state."""
        with state_lock(self.state_file):
            existing = read_state(self.state_file)
            if existing is not None and pid_alive(existing.router_pid):
                raise ServingError(f"already serving at {existing.endpoint}; stop it first")
            stable = self._backend("stable", source, 100, **kw)
            host = self.settings.serving.host
            router_port = port if port is not None else self.settings.serving.port
            state = ServingState(
                model_name=self.settings.serving.model_name,
                host=host,
                router_port=router_port,
                router_pid=0,
                stable=stable,
            )
            write_state(self.state_file, state)
            try:
                state.router_pid = self._start_router(host, router_port)
            except BaseException:
                stop_process(stable.pid, grace=2)
                clear_state(self.state_file)
                raise
            write_state(self.state_file, state)
        self._registry_transition(stable, "champion", "serving as stable")
        return state

    def _start_router(self, host: str, port: int) -> int:
        if not port_is_free(host, port):
            raise ServingError(
                f"{host}:{port} is already in use by another process: stop it or choose "
                "another router port (serving.port / E2EAI_SERVING__PORT)"
            )
        log_path = serving_dir(self.settings.home) / "logs" / f"router-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "e2eai.serving.router",
                    "--state",
                    str(self.state_file.resolve()),
                    "--host",
                    host,
                    "--port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_until_ready(f"http://{host}:{port}/router/status", process.pid, 30, log_path)
            answered = httpx.get(f"http://{host}:{port}/router/status", timeout=5.0).json()
            if answered.get("pid") != process.pid:  # someone else took the port meanwhile
                raise ServingError(
                    f"{host}:{port} answers from pid {answered.get('pid')}, not the router "
                    f"just started (pid {process.pid}); see {log_path}"
                )
        except BaseException:
            stop_process(process.pid, grace=2)
            raise
        return process.pid

    def deploy(self, source: ModelSource, canary_percent: int, **kw: Any) -> ServingState:
        """Start ``source`` as the canary and send it ``canary_percent`` % of the traffic."""
        if not 0 < canary_percent <= 100:
            raise ServingError(f"--canary must be in 1..100, got {canary_percent}")
        with state_lock(self.state_file):
            state = self.state()
            if state.canary is not None:
                raise ServingError(
                    f"canary {state.canary.version} is already deployed: promote or roll back"
                )
            canary = self._backend("canary", source, canary_percent, **kw)
            assert state.stable is not None
            state.stable.weight = 100 - canary_percent
            state.canary = canary
            self._save_and_reload(state, reset_samples=True)
        self._registry_transition(canary, "canary", f"deployed at {canary_percent}%")
        return state

    def set_canary_weight(self, percent: int) -> ServingState:
        with state_lock(self.state_file):
            state = self.state()
            if state.canary is None or state.stable is None:
                raise ServingError("no canary is deployed")
            state.canary.weight = percent
            state.stable.weight = 100 - percent
            self._save_and_reload(state)
        return state

    def promote(self) -> ServingState:
        """Canary takes all traffic; the old stable is drained and stopped."""
        with state_lock(self.state_file):
            state = self.state()
            if state.canary is None or state.stable is None:
                raise ServingError("no canary is deployed: nothing to promote")
            old = state.stable
            state.canary.weight, old.weight = 100, 0
            self._save_and_reload(state)
            self._router_post(state, "/router/drain", {"slot": "stable"})
            new_stable = state.canary.model_copy(update={"slot": "stable", "weight": 100})
            state.stable, state.canary = new_stable, None
            self._save_and_reload(state, reset_samples=True)
            stop_process(old.pid)
        self._registry_transition(new_stable, "champion", "promoted after canary analysis")
        return state

    def rollback(self, reason: str = "rolled back") -> ServingState:
        """Stable takes all traffic back; the canary is drained and stopped."""
        with state_lock(self.state_file):
            state = self.state()
            if state.canary is None or state.stable is None:
                raise ServingError("no canary is deployed: nothing to roll back")
            canary = state.canary
            state.stable.weight, canary.weight = 100, 0
            self._save_and_reload(state)
            self._router_post(state, "/router/drain", {"slot": "canary"})
            state.canary = None
            self._save_and_reload(state, reset_samples=True)
            stop_process(canary.pid)
        self._registry_transition(canary, "rejected", reason)
        return state

    def stop(self) -> None:
        """Stop the router and every predictor; forget the state."""
        with state_lock(self.state_file):
            state = read_state(self.state_file)
            if state is None:
                return
            stop_process(state.router_pid, grace=5)
            for backend in state.backends():
                stop_process(backend.pid)
            clear_state(self.state_file)

    def status(self) -> dict[str, Any]:
        state = self.state()
        router = self._router_get(state, "/router/status")
        return {
            "endpoint": state.endpoint,
            "model_name": state.model_name,
            "stable": state.stable.model_dump(mode="json") if state.stable else None,
            "canary": state.canary.model_dump(mode="json") if state.canary else None,
            "router": router,
            "decisions": [
                d.model_dump(mode="json") for d in read_decisions(self.decisions_file, limit=10)
            ],
        }

    def feedback(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Send ground-truth labels for served request ids to the router."""
        return self._router_post(self.state(), "/router/feedback", {"feedback": items})

    def analyze(self, apply: bool = True) -> CanaryDecision:
        """Run canary analysis on the router's samples; apply and record the decision."""
        state = self.state()
        if state.canary is None or state.stable is None:
            raise ServingError("no canary is deployed: nothing to analyse")
        stable, canary = samples_from_router(self._router_get(state, "/router/samples"))
        decision = decide(
            stable,
            canary,
            policy=self.policy,
            stable_version=state.stable.version,
            canary_version=state.canary.version,
            canary_weight=state.canary.weight,
        )
        if apply:
            if decision.action == "rollback":
                self.rollback(reason=decision.reason)
            elif decision.action == "promote":
                self.promote()
            elif decision.action == "step":
                self.set_canary_weight(decision.weight_after)
            decision = decision.model_copy(update={"applied": decision.action != "hold"})
        record_decision(self.decisions_file, decision)
        return decision

    def decisions(self, limit: int | None = None) -> list[CanaryDecision]:
        return read_decisions(self.decisions_file, limit)

    # -- registry bookkeeping ----------------------------------------------------------------

    def _registry_transition(self, backend: Backend, stage: str, reason: str) -> None:
        """Record the stage in the registry for registry-sourced models (path models: no-op)."""
        if backend.registry_version is None:
            return
        from e2eai.registry import ModelRegistry

        with ModelRegistry.from_settings(self.settings) as registry:
            current = registry.get(backend.registry_version).stage
            if str(current) != stage:
                registry.transition(backend.registry_version, stage, reason)
