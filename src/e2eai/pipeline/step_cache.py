"""A content-addressed cache of step outputs under ``settings.home/cache``.

An entry is keyed by the sha256 of everything the step's output depends on (input content,
relevant settings, code fingerprint), holds copies of the output files and the step's summary,
and appears atomically (staging folder renamed into place), so a crashed step leaves no entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2eai import jsonable

ENTRY_FILE = "entry.json"


@dataclass(frozen=True)
class CacheEntry:
    """A stored step output: ``files/<name>`` copies and the summary the step returned."""

    step: str
    key: str
    directory: Path
    summary: dict[str, Any]

    def file(self, name: str) -> Path:
        return self.directory / "files" / name


def cache_key(step: str, inputs: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``step`` and its ``inputs``."""
    payload = jsonable.dumps({"step": step, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def copy_into(source: Path, target: Path) -> Path:
    """Replace ``target`` with a copy of ``source`` (file or directory), atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.staging-{uuid.uuid4().hex[:8]}")
    if source.is_dir():
        shutil.copytree(source, staging)
    else:
        shutil.copy2(source, staging)
    if target.is_dir() and not target.is_symlink():
        retired = target.with_name(f".{target.name}.retired-{uuid.uuid4().hex[:8]}")
        target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.replace(target)
    return target


class StepCache:
    """Look up and store step outputs by content key; ``enabled=False`` never hits."""

    def __init__(self, root: Path, enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled

    def _dir(self, step: str, key: str) -> Path:
        return self.root / step / key

    def lookup(self, step: str, key: str) -> CacheEntry | None:
        """The complete entry for ``key``, or None (also when the cache is disabled)."""
        if not self.enabled:
            return None
        directory = self._dir(step, key)
        entry_file = directory / ENTRY_FILE
        if not entry_file.is_file():
            return None
        recorded = json.loads(entry_file.read_text())
        return CacheEntry(step, key, directory, recorded["summary"])

    def store(
        self, step: str, key: str, files: Mapping[str, Path], summary: dict[str, Any]
    ) -> CacheEntry:
        """Copy ``files`` (files or directories) into a new entry for ``key``."""
        directory = self._dir(step, key)
        if not self.enabled:
            return CacheEntry(step, key, directory, summary)
        staging = directory.with_name(f".{key}.staging-{uuid.uuid4().hex[:8]}")
        (staging / "files").mkdir(parents=True)
        try:
            for name, path in files.items():
                target = staging / "files" / name
                if path.is_dir():
                    shutil.copytree(path, target)
                else:
                    shutil.copy2(path, target)
            (staging / ENTRY_FILE).write_text(
                jsonable.dumps(
                    {
                        "step": step,
                        "key": key,
                        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "files": sorted(files),
                        "summary": summary,
                    },
                    indent=1,
                )
            )
            if directory.exists():  # a concurrent run stored the same key first: keep theirs
                shutil.rmtree(staging)
            else:
                staging.rename(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return CacheEntry(step, key, directory, summary)
