"""Settings of one pipeline run: environment + a JSON object of overrides + run parameters.

Every component receives the run's settings as one JSON string, so the same pipeline runs on a
laptop (``kfp.local``, the environment is inherited) and on a cluster (each pod has the image's
environment; the JSON carries what the run changed).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from e2eai.config import Settings
from e2eai.errors import PipelineError


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(settings_json: str) -> dict[str, Any]:
    """The overrides object in ``settings_json`` ("" or "{}" = none); PipelineError if bad."""
    if not settings_json or not settings_json.strip():
        return {}
    try:
        overrides = json.loads(settings_json)
    except json.JSONDecodeError as exc:
        raise PipelineError(f"settings_json is not valid JSON: {exc}") from exc
    if not isinstance(overrides, dict):
        raise PipelineError(
            "settings_json must be a JSON object of settings sections, "
            f"got {type(overrides).__name__}"
        )
    return overrides


def settings_from_json(settings_json: str) -> Settings:
    """Settings from the environment with the overrides in ``settings_json`` on top."""
    overrides = parse_overrides(settings_json)
    try:
        # Nested sections merge with what the environment set (pydantic-settings deep-merges
        # init values over env values), so {"training": {"epochs": 1}} keeps the rest.
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PipelineError(f"settings_json: {problems}") from exc


def resolve_run_settings(
    settings_json: str = "{}",
    *,
    data_start: str = "",
    data_end: str = "",
    train_start: str = "",
    train_end: str = "",
    family: str = "",
    hpo_trials: int = -1,
    task: str = "",
) -> Settings:
    """Settings of a run: ``settings_json`` overrides plus the pipeline's own parameters.

    Empty strings and ``hpo_trials < 0`` mean "keep the setting". Explicit pipeline parameters
    win over the same field in ``settings_json``; ``task`` chooses the registered task.
    """
    params: dict[str, Any] = {"data": {}, "training": {}}
    for section, key, value in (
        ("data", "start", data_start),
        ("data", "end", data_end),
        ("training", "train_start", train_start),
        ("training", "train_end", train_end),
        ("training", "family", family),
    ):
        if value:
            params[section][key] = value
    if hpo_trials >= 0:
        params["training"]["hpo_trials"] = hpo_trials
    if task:
        params["task"] = task
    merged = _deep_merge(parse_overrides(settings_json), {k: v for k, v in params.items() if v})
    return settings_from_json(json.dumps(merged))


def settings_to_json(settings: Settings) -> str:
    """All of ``settings`` as the JSON object later steps receive (the run's frozen config)."""
    return settings.model_dump_json()
