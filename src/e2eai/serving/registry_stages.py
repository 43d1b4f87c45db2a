"""Registry bookkeeping of a rollout: the stage each served version moves to.

Serving as stable → ``champion``, deployed as canary → ``canary``, rolled back →
``rejected``. Only registry-sourced models have a stage; a model served from a file has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2eai.config import Settings


def check_stage(settings: Settings, registry_version: int | None, stage: str) -> None:
    """Raise ServingError unless ``registry_version`` is at ``stage`` or may move there.

    Called before a rollout changes anything, so that an impossible stage change (an
    archived or rejected version as canary …) refuses the operation instead of leaving
    traffic and registry disagreeing.
    """
    if registry_version is None:
        return
    from e2eai.errors import ServingError
    from e2eai.registry import ALLOWED_TRANSITIONS, ModelRegistry, Stage

    with ModelRegistry.from_settings(settings) as registry:
        current = Stage(registry.get(registry_version).stage)
    if current.value != stage and Stage(stage) not in ALLOWED_TRANSITIONS[current]:
        raise ServingError(
            f"version {registry_version} is {current.value} and cannot become {stage}: "
            "nothing was changed"
        )


def record_stage(settings: Settings, registry_version: int | None, stage: str, reason: str) -> None:
    """Move ``registry_version`` to ``stage`` (with ``reason``) unless it is there already.

    ``registry_version`` None (a model served from a file) is a no-op.
    """
    if registry_version is None:
        return
    from e2eai.registry import ModelRegistry

    with ModelRegistry.from_settings(settings) as registry:
        current = registry.get(registry_version).stage
        if str(current) != stage:
            registry.transition(registry_version, stage, reason)
