"""Where a torch run keeps its per-epoch checkpoints: a file in its run directory, or the store.

A checkpoint is the dict the DDP loop saves after every epoch (module, optimiser, scheduler,
epoch, early-stopping state, fingerprint). Rank 0 writes it; at start rank 0 picks the one to
resume from and every rank loads that same one, so all ranks resume at the same epoch.

- :class:`RunDirCheckpoint` — ``<run_dir>/checkpoint.pt``, replaced atomically (write a
  ``.partial`` file, then rename). A local run (``torchrun --standalone``) resumes from it.
- :class:`StoreCheckpoints` — objects ``<prefix>/epoch-0003-<sha256[:16]>.pt`` in the artifact
  store (S3 on a cluster), so a restarted node of a multi-node job, whose pod has a fresh
  filesystem, finds the job's progress. An object store publishes an object whole or not at
  all (a local store writes a temporary file and renames it), so every listed name is
  complete; the digest in the name also catches bytes damaged at rest, and the newest intact
  checkpoint wins. They are read with ``weights_only=True``: a shared bucket is no place to
  unpickle arbitrary objects from.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from e2eai.errors import ArtifactIntegrityError

if TYPE_CHECKING:
    from e2eai.storage import ArtifactStore

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
_STORE_NAME = re.compile(r"^epoch-(?P<epoch>\d{4,})-(?P<digest>[0-9a-f]{16})\.pt$")


class CheckpointLocation(Protocol):
    """Where one run's checkpoints are saved and found again."""

    def newest(self) -> str | None:
        """Name of the checkpoint to resume from; None when the run has none yet."""

    def load(self, name: str) -> dict[str, Any]:
        """The checkpoint called ``name`` (as returned by ``newest`` or ``save``)."""

    def save(self, epoch: int, checkpoint: dict[str, Any]) -> str:
        """Persist ``checkpoint`` (taken after ``epoch``) atomically; returns its name."""

    def describe(self, name: str | None = None) -> str:
        """Where the checkpoints (or the one called ``name``) live, for messages."""


@dataclass(frozen=True)
class RunDirCheckpoint:
    """One file, ``checkpoint.pt`` in the run directory, replaced after every epoch."""

    path: Path

    def newest(self) -> str | None:
        return self.path.name if self.path.exists() else None

    def load(self, name: str) -> dict[str, Any]:
        import torch

        return torch.load(self.path.with_name(name), weights_only=False)

    def save(self, epoch: int, checkpoint: dict[str, Any]) -> str:
        import torch

        tmp = self.path.with_name(self.path.name + ".partial")
        torch.save(checkpoint, tmp)
        os.replace(tmp, self.path)  # a worker killed mid-write never leaves half a checkpoint
        return self.path.name

    def describe(self, name: str | None = None) -> str:
        return str(self.path)


@dataclass(frozen=True)
class StoreCheckpoints:
    """Checkpoints as ``<prefix>/epoch-NNNN-<sha256[:16]>.pt`` objects in an artifact store."""

    store: ArtifactStore
    prefix: str

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def _names_newest_first(self) -> list[tuple[int, str]]:
        found = []
        for key in self.store.list(f"{self.prefix}/"):
            match = _STORE_NAME.match(key.removeprefix(f"{self.prefix}/"))
            if match:
                found.append((int(match["epoch"]), match.string))
        return sorted(found, reverse=True)

    def newest(self) -> str | None:
        """The newest checkpoint whose bytes match the digest in its name.

        A damaged one is skipped with a warning (the run resumes from an earlier epoch rather
        than failing or starting over).
        """
        for _, name in self._names_newest_first():
            try:
                self._verified_bytes(name)
            except ArtifactIntegrityError as exc:
                log.warning("skipping checkpoint: %s", exc)
                continue
            return name
        return None

    def _verified_bytes(self, name: str) -> bytes:
        match = _STORE_NAME.match(name)
        if match is None:
            raise ArtifactIntegrityError(f"{self.describe(name)} is not a checkpoint name")
        data = self.store.get_bytes(self._key(name))
        if hashlib.sha256(data).hexdigest()[:16] != match["digest"]:
            raise ArtifactIntegrityError(
                f"{self.describe(name)}: the bytes do not match the sha256 in the name "
                "(damaged or modified)"
            )
        return data

    def load(self, name: str) -> dict[str, Any]:
        import torch

        return torch.load(io.BytesIO(self._verified_bytes(name)), weights_only=True)

    def save(self, epoch: int, checkpoint: dict[str, Any]) -> str:
        import torch

        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        name = f"epoch-{epoch:04d}-{hashlib.sha256(data).hexdigest()[:16]}.pt"
        self.store.put_bytes(self._key(name), data)
        return name

    def describe(self, name: str | None = None) -> str:
        return self.store.uri(self._key(name)) if name else self.store.uri(self.prefix)
