"""Processes of local serving: KServe ModelServer predictors and the weighted router.

Each runs on loopback ports, detached from the command that started it (so that
``e2eai serve`` can return and ``e2eai rollout …`` can act later from another process), with
its output in a log file under ``settings.home/serving/logs/``. Starting waits until the
process answers, and checks that the answer comes from the process just started.
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
from typing import TYPE_CHECKING

import httpx

from e2eai.auth import TOKEN_ENV, admin_token
from e2eai.errors import ServingError
from e2eai.serving.state import serving_dir

if TYPE_CHECKING:
    from e2eai.config import Settings
    from e2eai.serving.rollout import ModelSource


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
    return served_by(pid, port) is not None


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
    """True while process ``pid`` exists; an exited child of ours is reaped, not counted."""
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


def _group_alive(pid: int) -> bool:
    """True while any process of the group that ``pid`` leads exists (``pid`` itself reaped)."""
    if pid_alive(pid):
        return True
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal(pid: int, signum: int) -> None:
    # Serving processes lead their own group (a supervisor and the server it restarts):
    # signal the whole group, so a server whose supervisor was killed is stopped too.
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def stop_process(pid: int, grace: float = 10.0) -> None:
    """SIGTERM ``pid`` and its process group, wait up to ``grace`` seconds, then SIGKILL."""
    if not _group_alive(pid):
        return
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.05)
    _signal(pid, signal.SIGKILL)


def served_by(pid: int, port: int) -> int | None:
    """The pid of the process (``pid`` or a descendant) listening on ``port``, if any.

    ``pid`` is a supervisor; this is the server it runs right now (it changes on a restart).
    """
    import psutil

    try:
        process = psutil.Process(pid)
        for member in [process, *process.children(recursive=True)]:
            for conn in member.connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return member.pid
    except psutil.Error:
        return None
    return None


def supervised(command: list[str], name: str, ready_url: str) -> list[str]:
    """``command`` run under :mod:`e2eai.serving.supervisor` (restarted when it dies, once it
    has been ready at ``ready_url``)."""
    return [
        sys.executable,
        "-m",
        "e2eai.serving.supervisor",
        "--name",
        name,
        "--ready-url",
        ready_url,
        "--",
        *command,
    ]


def verify_version(settings: Settings, version: int) -> None:
    """Refuse to serve a registry version any of whose artifacts does not match its record.

    Not only ``model.onnx`` (checked again when it is fetched): a tampered ``metrics.json``
    or lineage would make the registry's account of what serves untrue.
    """
    from e2eai.errors import ArtifactIntegrityError
    from e2eai.registry import ModelRegistry

    with ModelRegistry.from_settings(settings) as registry:
        result = registry.verify(version)
    if not result.ok:
        bad = ", ".join(f"{a.name} ({a.status})" for a in result.artifacts if a.status != "ok")
        raise ArtifactIntegrityError(
            f"{result.name} v{version}: refusing to serve, artifacts do not match the "
            f"registry's sha256 records: {bad} (see `e2eai registry verify {version}`)"
        )


@dataclass(frozen=True)
class PredictorProcess:
    """A started predictor: its pid, its ports, the model file it loaded and its log."""

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

    if source.storage_uri is not None and source.onnx_path is None:
        raise ServingError(
            f"local serving runs registry versions or ONNX files, not {source.storage_uri}: "
            "give the registry version or a local copy of the file"
        )
    if source.registry_version is not None:
        verify_version(settings, source.registry_version)
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
    if settings.serving.feature_repo is not None:
        env["E2EAI_FEATURES__REPO"] = str(settings.serving.feature_repo)
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # detached: outlives the CLI command that started it
            supervised(
                command,
                f"{slot}-{source.version}",
                f"http://127.0.0.1:{http_port}/v2/health/ready",
            ),
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
    from e2eai.serving.client import placeholder_request
    from e2eai.tasks import load_task

    url = f"{base_url}/v2/models/{settings.serving.model_name}/infer"
    payload = placeholder_request(load_task(settings))
    with httpx.Client(timeout=10.0) as client:
        for _ in range(requests):
            client.post(url, json=payload).raise_for_status()


def start_app(settings: Settings, log_path: Path, ready_path: str = "/readyz") -> int:
    """Start ``e2eai app`` (as deployed: a process of its own, configured by environment) on
    ``settings.app``'s host and port and wait until ``ready_path`` answers; its pid."""
    env = {**os.environ, **settings_env(settings)}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "e2eai"), "app"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{settings.app.host}:{settings.app.port}{ready_path}"
    try:
        wait_until_ready(url, process.pid, 60, log_path)
    except BaseException:
        stop_process(process.pid, grace=5)
        raise
    return process.pid


def start_router(settings: Settings, state_file: Path, host: str, port: int) -> int:
    """Start the router on ``host:port`` over the backends in ``state_file``; its pid.

    The port is the one clients were told, so it is not picked freely: a port someone else
    listens on is an error, not something to talk to.
    """
    if not port_is_free(host, port):
        raise ServingError(
            f"{host}:{port} is already in use by another process: stop it or choose "
            "another router port (serving.port / E2EAI_SERVING__PORT)"
        )
    log_path = serving_dir(settings.home) / "logs" / f"router-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        command = [
            sys.executable,
            "-m",
            "e2eai.serving.router",
            "--state",
            str(state_file.resolve()),
            "--host",
            host,
            "--port",
            str(port),
            "--failover-wait",
            str(settings.serving.failover_wait_seconds),
            "--max-body-bytes",
            str(settings.serving.max_payload_bytes),
            "--shadow" if settings.serving.canary_shadow else "--no-shadow",
        ]
        process = subprocess.Popen(
            supervised(command, f"router-{port}", f"http://{host}:{port}/router/status"),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # The token goes by environment (readable by this account only), never argv.
            env={**os.environ, TOKEN_ENV: admin_token(settings)},
        )
    try:
        wait_until_ready(f"http://{host}:{port}/router/status", process.pid, 30, log_path)
        answered = httpx.get(f"http://{host}:{port}/router/status", timeout=5.0).json()
        if answered.get("pid") != served_by(process.pid, port):  # someone else took the port
            raise ServingError(
                f"{host}:{port} answers from pid {answered.get('pid')}, not the router "
                f"just started (pid {process.pid}); see {log_path}"
            )
    except BaseException:
        stop_process(process.pid, grace=2)
        raise
    return process.pid
