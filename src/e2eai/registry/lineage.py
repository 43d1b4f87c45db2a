"""Where a model version came from: data snapshot, features, training window, code, parent."""

from __future__ import annotations

import os
import subprocess
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Set in container images (built from a commit, without a .git directory) to the commit sha.
CODE_VERSION_ENV = "E2EAI_CODE_VERSION"


@lru_cache(maxsize=1)
def code_version() -> str:
    """The version of the code running now, for lineage records.

    In order: ``$E2EAI_CODE_VERSION`` (set by image builds); the git commit of the checkout
    that holds the e2eai package, with ``-dirty`` appended when tracked files have uncommitted
    changes (the sha alone would then claim code that did not produce the model); else the
    installed package version.
    """
    from_env = os.environ.get(CODE_VERSION_ENV, "").strip()
    if from_env:
        return from_env
    sha = _git_commit(Path(__file__).resolve().parent)
    return sha if sha is not None else _package_version()


def _git_commit(directory: Path) -> str | None:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):  # no git binary, or a hung filesystem
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    sha = git("rev-parse", "--verify", "HEAD")
    if not sha:  # not a checkout, or a repository without commits yet
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{sha}-dirty" if dirty else sha


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"e2eai=={version('e2eai')}"
    except PackageNotFoundError:
        from e2eai import __version__

        return f"e2eai=={__version__}"


class _Record(BaseModel):
    """Frozen, closed record; ``record["field"]`` reads like the dict the contract describes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """Field ``key`` if this record has it, else ``default`` (dict-style access)."""
        return getattr(self, key) if key in type(self).model_fields else default


class TrainingWindow(_Record):
    """The days of data a model was trained on (inclusive)."""

    start: date
    end: date

    @field_validator("start", "end", mode="before")
    @classmethod
    def _day_of_datetime(cls, value: Any) -> Any:
        # Windows are whole days; a datetime (or pandas Timestamp) names its day.
        return value.date() if isinstance(value, datetime) else value

    @model_validator(mode="after")
    def _ordered(self) -> TrainingWindow:
        if self.end < self.start:
            raise ValueError(f"training_window.end ({self.end}) is before start ({self.start})")
        return self


class Lineage(_Record):
    """What a model version was made from; every field is checked when it is registered."""

    raw_snapshot: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 (lowercase hex) of the raw data snapshot the features came from.",
    )
    feature_service: str | None = Field(
        None, min_length=1, description="Feast feature service that built the training set."
    )
    training_window: TrainingWindow | None = None
    task: str | None = Field(
        None, min_length=1, description="The prediction task the model serves (its name)."
    )
    code_version: str = Field(
        default_factory=code_version,
        min_length=1,
        description="git sha (or package version) of the training code; defaults to this one.",
    )
    parent_version: int | None = Field(
        None, ge=1, description="Registry version this one was warm-started from."
    )
