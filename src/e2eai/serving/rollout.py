"""The one rollout interface: deploy a canary, shift its share, promote or roll it back.

Local serving (:class:`e2eai.serving.local.LocalServing`) and the cluster controller
(:class:`e2eai.serving.k8s_rollout.K8sRolloutController`) both implement :class:`Rollout`,
so whoever drives a rollout — the CLI, a pipeline step, the loop acting on canary analysis —
does not need to know where the traffic is split.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2eai.serving.canary_analysis import CanaryDecision

PROMOTE_REASON = "promoted after canary analysis"
ROLLBACK_REASON = "rolled back"


@dataclass(frozen=True)
class ModelSource:
    """Which model to serve: a registry version (fetched, sha256-verified), a local ONNX
    file, or an object-store URI the cluster's storage initializer pulls from."""

    version: str
    onnx_path: Path | None = None
    registry_version: int | None = None
    storage_uri: str | None = None

    @classmethod
    def from_registry(cls, version: int) -> ModelSource:
        return cls(version=str(version), registry_version=version)

    @classmethod
    def from_path(cls, path: Path, version: str | None = None) -> ModelSource:
        return cls(version=version or Path(path).stem, onnx_path=Path(path))

    @classmethod
    def from_uri(cls, storage_uri: str, version: str) -> ModelSource:
        return cls(version=version, storage_uri=storage_uri)


@dataclass(frozen=True)
class RolloutStatus:
    """Where the traffic goes: the stable model, the canary (if any) and the canary's share.

    ``*_storage_uri`` is where a model's bytes are: the object-store URI on the cluster, the
    ONNX file locally. ``endpoint`` is the URL clients call, when the deployment knows it.
    """

    stable_version: str
    stable_storage_uri: str
    canary_version: str | None
    canary_storage_uri: str | None
    canary_percent: int
    endpoint: str | None = None

    @property
    def stable_percent(self) -> int:
        return 100 - self.canary_percent


class Rollout(ABC):
    """A canary rollout of one served model, wherever it runs."""

    @abstractmethod
    def status(self) -> RolloutStatus:
        """What serves now and with which share."""

    @abstractmethod
    def deploy(self, source: ModelSource, canary_percent: int) -> RolloutStatus:
        """Start ``source`` as the canary with ``canary_percent`` % (1..100) of the traffic."""

    @abstractmethod
    def set_canary_percent(self, percent: int) -> RolloutStatus:
        """Send ``percent`` % of the traffic to the deployed canary, the rest to stable."""

    @abstractmethod
    def promote(self, reason: str = PROMOTE_REASON) -> RolloutStatus:
        """The canary becomes the stable model with all traffic."""

    @abstractmethod
    def rollback(self, reason: str = ROLLBACK_REASON) -> RolloutStatus:
        """All traffic back to the stable model; the canary is removed."""

    def apply_decision(self, decision: CanaryDecision) -> CanaryDecision:
        """Act on a canary-analysis decision; return it marked applied (a hold is not)."""
        if decision.action == "rollback":
            self.rollback(reason=decision.reason)
        elif decision.action == "promote":
            self.promote(reason=f"{PROMOTE_REASON}: {decision.reason}")
        elif decision.action == "step":
            self.set_canary_percent(decision.weight_after)
        return decision.model_copy(update={"applied": decision.action != "hold"})
