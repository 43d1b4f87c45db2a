"""Supervision of a serving process: restart it when it dies, on the same ports.

``python -m e2eai.serving.supervisor --name stable-v3 -- <command…>`` runs ``command`` and
starts it again whenever it exits without being asked to, with a short back-off (0.2 s,
doubling up to 5 s, reset after a minute of uptime). It gives up, and exits 1, after
``--max-restarts`` restarts within ``--window`` seconds: a process that cannot stay up is a
broken deployment, not something to hammer. SIGTERM or SIGINT to the supervisor stops the
child (SIGTERM, then SIGKILL after ``--grace``) and exits 0.

The child runs in the supervisor's process group (the serving manager starts the supervisor
in a new session), so stopping the group stops both even if the supervisor itself was killed.
The router waits for a restarted predictor instead of failing requests, so a kill -9 costs
latency for a few seconds, not errors. This is what a Deployment's restart policy does on a
cluster; here it is one small process per served model.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from types import FrameType

BACKOFF_START = 0.2
BACKOFF_MAX = 5.0
STABLE_AFTER = 60.0


def _log(name: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} supervisor[{name}]: {message}", file=sys.stderr, flush=True)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def supervise(
    command: list[str],
    *,
    name: str,
    max_restarts: int,
    window: float,
    grace: float,
    ready_url: str | None = None,
) -> int:
    """Run ``command`` until told to stop; the exit status of the supervisor.

    With ``ready_url``, a child that exits by itself before the URL ever answered 200 is not
    restarted: a process that cannot start (a bad model, a taken port) fails its start, at
    once. One killed by a signal is restarted either way.
    """
    stopping = False
    was_ready = ready_url is None
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    restarts: deque[float] = deque()
    backoff = BACKOFF_START
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(command)
        _log(name, f"started pid {child.pid}")
        stop_asked: float | None = None
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if not was_ready and ready_url is not None:
                    was_ready = _ready(ready_url)
                if stopping:
                    stop_asked = stop_asked or time.monotonic()
                    if time.monotonic() - stop_asked > grace:
                        child.kill()  # did not stop within the grace period
        if stopping:
            _log(name, f"stopped (pid {child.pid} exited {code})")
            return 0
        if not was_ready and code >= 0:
            # It exited by itself before it ever answered: it cannot start. A child killed
            # by a signal (kill -9) is restarted, ready or not: that is what supervision is for.
            _log(name, f"pid {child.pid} exited {code} before it was ready: not restarting")
            return code if code > 0 else 1
        uptime = time.monotonic() - started
        if uptime > STABLE_AFTER:
            backoff = BACKOFF_START
        now = time.monotonic()
        restarts.append(now)
        while restarts and now - restarts[0] > window:
            restarts.popleft()
        if len(restarts) > max_restarts:
            _log(
                name,
                f"pid {child.pid} exited {code}; {len(restarts)} restarts in "
                f"{window:.0f} s: giving up",
            )
            return 1
        _log(
            name,
            f"pid {child.pid} exited {code} after {uptime:.1f} s; restarting in {backoff:.1f} s",
        )
        deadline = time.monotonic() + backoff
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.05)
        backoff = min(backoff * 2, BACKOFF_MAX)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e2eai.serving.supervisor")
    parser.add_argument("--name", required=True, help="What is supervised (for the log).")
    parser.add_argument("--max-restarts", type=int, default=10)
    parser.add_argument("--window", type=float, default=120.0)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--ready-url", default=None, help="Restart only once this answered 200.")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to supervise after --")
    sys.exit(
        supervise(
            command,
            name=args.name,
            max_restarts=args.max_restarts,
            window=args.window,
            grace=args.grace,
            ready_url=args.ready_url,
        )
    )


if __name__ == "__main__":
    main()
