"""The supervisor restarts a serving process that dies, stops it when told, and gives up on
one that cannot stay up or never became ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from e2eai.serving.processes import free_port, pid_alive, stop_process

pytestmark = pytest.mark.timeout(60)


def _start(tmp_path: Path, child: str, *extra: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "child.py"
    script.write_text(child)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "e2eai.serving.supervisor",
            "--name",
            "test",
            *extra,
            "--",
            sys.executable,
            str(script),
        ],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _children(pid: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [c.pid for c in psutil.Process(pid).children()]
        if kids:
            return kids
        time.sleep(0.05)
    raise AssertionError("the supervisor started no child")


SLEEPER = "import time\nwhile True:\n    time.sleep(1)\n"


def test_a_killed_child_is_replaced_and_sigterm_stops_both(tmp_path: Path) -> None:
    supervisor = _start(tmp_path, SLEEPER)
    try:
        (first,) = _children(supervisor.pid)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            kids = [c.pid for c in psutil.Process(supervisor.pid).children()]
            if kids and kids != [first]:
                break
            assert time.monotonic() < deadline, "no replacement child"
            time.sleep(0.05)
        (second,) = kids
        stop_process(supervisor.pid, grace=5)
        assert not pid_alive(supervisor.pid) and not psutil.pid_exists(second)
        log = supervisor.stderr.read().decode() if supervisor.stderr else ""
        assert f"stopped (pid {second}" in log  # asked to stop: not restarted again
    finally:
        stop_process(supervisor.pid, grace=1)


def test_stopping_the_group_stops_a_child_whose_supervisor_was_killed(tmp_path: Path) -> None:
    supervisor = _start(tmp_path, SLEEPER)
    (child,) = _children(supervisor.pid)
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait(timeout=5)
    assert psutil.pid_exists(child)  # orphaned, still serving
    stop_process(supervisor.pid, grace=5)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the orphaned child was not stopped"
        time.sleep(0.05)


def test_a_child_that_keeps_dying_is_given_up(tmp_path: Path) -> None:
    supervisor = _start(tmp_path, "import sys\nsys.exit(3)\n", "--max-restarts", "2")
    assert supervisor.wait(timeout=30) == 1
    log = supervisor.stderr.read().decode() if supervisor.stderr else ""
    assert "giving up" in log and log.count("restarting in") == 2


def test_a_child_that_dies_before_it_was_ready_is_not_restarted(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/ready"  # nobody answers there
    supervisor = _start(tmp_path, "import sys\nsys.exit(4)\n", "--ready-url", url)
    assert supervisor.wait(timeout=15) == 4
    log = supervisor.stderr.read().decode() if supervisor.stderr else ""
    assert "before it was ready" in log and "restarting in" not in log
