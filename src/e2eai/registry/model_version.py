"""The registry's answers: immutable snapshots of a model version and its artifacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from e2eai.errors import ArtifactNotFoundError
from e2eai.registry.lineage import Lineage, _Record
from e2eai.registry.stages import Stage


class ArtifactRecord(_Record):
    """One file of a model version as stored: where, and the bytes it must hash to."""

    key: str = Field(description="Key in the artifact store: models/<name>/v<version>/<file>.")
    sha256: str = Field(description="Lowercase hex sha256 recorded at registration.")
    size: int = Field(ge=0, description="Size in bytes recorded at registration.")


class StageTransition(_Record):
    """One move of a model version between stages (``from_stage`` None = registration)."""

    from_stage: Stage | None
    to_stage: Stage
    reason: str
    at: datetime


class ModelVersion(_Record):
    """A registered model version, as read from the registry (a snapshot: it does not update)."""

    version: int
    name: str
    family: str
    stage: Stage
    metrics: dict[str, Any]
    params: dict[str, Any]
    lineage: Lineage
    artifacts: dict[str, ArtifactRecord]
    created_at: datetime
    transitions: tuple[StageTransition, ...]

    @property
    def label(self) -> str:
        """``"<name> v<version>"``, how messages name this version."""
        return f"{self.name} v{self.version}"

    def artifact(self, name: str) -> ArtifactRecord:
        """The record of artifact ``name``, or ArtifactNotFoundError listing the ones there are."""
        try:
            return self.artifacts[name]
        except KeyError:
            have = ", ".join(sorted(self.artifacts)) or "none"
            raise ArtifactNotFoundError(
                f"{self.label} has no artifact {name!r}; its artifacts: {have}"
            ) from None


ArtifactStatus = Literal["ok", "modified", "missing"]


class ArtifactCheck(_Record):
    """The result of re-hashing one stored artifact against its record."""

    name: str
    uri: str
    status: ArtifactStatus
    expected_sha256: str
    actual_sha256: str | None
    expected_size: int
    actual_size: int | None


class VersionVerification(_Record):
    """The result of re-hashing every artifact of one model version."""

    version: int
    name: str
    ok: bool
    artifacts: tuple[ArtifactCheck, ...]
