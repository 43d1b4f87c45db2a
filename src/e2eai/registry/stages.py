"""The lifecycle stages of a model version and which moves between them are allowed."""

from __future__ import annotations

from enum import StrEnum

from e2eai.errors import InvalidStageTransitionError, UnknownStageError


class Stage(StrEnum):
    """Where a model version is in its life.

    ``candidate`` (trained, passed or awaiting gates) → ``canary`` (serving a share of traffic)
    → ``champion`` (serving all traffic) → ``archived`` (superseded). ``rejected`` is terminal:
    a candidate that failed its gates or a canary that was rolled back.
    """

    CANDIDATE = "candidate"
    CANARY = "canary"
    CHAMPION = "champion"
    ARCHIVED = "archived"
    REJECTED = "rejected"


ALLOWED_TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    # Straight to champion is how the first model of a name (nothing to canary against) or a
    # manual promotion gets deployed.
    Stage.CANDIDATE: frozenset({Stage.CANARY, Stage.CHAMPION, Stage.REJECTED, Stage.ARCHIVED}),
    Stage.CANARY: frozenset({Stage.CHAMPION, Stage.REJECTED, Stage.ARCHIVED}),
    Stage.CHAMPION: frozenset({Stage.ARCHIVED}),
    # Rolling back to a former champion re-promotes it; nothing else revives an archived model.
    Stage.ARCHIVED: frozenset({Stage.CHAMPION}),
    Stage.REJECTED: frozenset(),
}

# Stages a version may have when it is registered (archived/rejected would be meaningless).
REGISTRATION_STAGES: frozenset[Stage] = frozenset({Stage.CANDIDATE, Stage.CANARY, Stage.CHAMPION})


def parse_stage(value: str | Stage) -> Stage:
    """The Stage named ``value`` (case-insensitive), or UnknownStageError listing the stages."""
    try:
        return Stage(str(value).strip().lower())
    except ValueError:
        names = ", ".join(stage.value for stage in Stage)
        raise UnknownStageError(f"unknown stage {value!r}; stages are: {names}") from None


def check_transition(label: str, current: Stage, target: Stage) -> None:
    """Raise InvalidStageTransitionError unless ``current`` → ``target`` is allowed.

    ``label`` names the model version in the message (e.g. ``"flight-delay v3"``).
    """
    allowed = ALLOWED_TRANSITIONS[current]
    if target in allowed:
        return
    if target == current:
        problem = f"{label} is already {current.value}"
    else:
        problem = f"{label} cannot move from {current.value} to {target.value}"
    options = ", ".join(sorted(stage.value for stage in allowed)) or "nothing (terminal stage)"
    raise InvalidStageTransitionError(f"{problem}; from {current.value} it may move to: {options}")
