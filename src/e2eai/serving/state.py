"""Local serving state: which version is stable/canary, weights, ports and pids.

Persisted as JSON under ``settings.home/serving/`` so that ``e2eai rollout …`` commands run
from other processes act on the same deployment. Writes are atomic (temp file + rename) and
serialised with an ``flock`` so two commands cannot interleave.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

Slot = Literal["stable", "canary"]


class Backend(BaseModel):
    """One predictor process behind the router."""

    slot: Slot
    version: str
    model_path: str
    registry_version: int | None = None
    http_port: int
    grpc_port: int
    pid: int
    weight: int = Field(ge=0, le=100)
    enrich: bool = False  # takes the task's raw requests (Feast enrichment in-process)
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


class ServingState(BaseModel):
    """The whole local deployment."""

    model_name: str
    host: str
    router_port: int
    router_pid: int
    stable: Backend | None = None
    canary: Backend | None = None
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.router_port}"

    def backends(self) -> list[Backend]:
        return [b for b in (self.stable, self.canary) if b is not None]


def serving_dir(home: Path) -> Path:
    return home / "serving"


def state_path(home: Path) -> Path:
    return serving_dir(home) / "state.json"


def read_state(path: Path) -> ServingState | None:
    """The saved state, or None when nothing is deployed."""
    if not path.is_file():
        return None
    return ServingState.model_validate_json(path.read_text())


def write_state(path: Path, state: ServingState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = state.model_copy(update={"updated_at": datetime.now(UTC)})
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(path)


def clear_state(path: Path) -> None:
    path.unlink(missing_ok=True)


@contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for a read-modify-write of the state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
