"""The registry side of training: fetch a registered model (champion or warm-start parent).

Only this module and ``registration`` talk to ``e2eai.registry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2eai.config import Settings
from e2eai.training.families import load_model, model_files
from e2eai.training.family import LoadedModel


@dataclass(frozen=True)
class RegisteredModel:
    """A model fetched from the registry into a local directory."""

    version: int
    family: str
    model: LoadedModel


def open_registry(settings: Settings) -> Any:
    """The model registry the settings name (a ``ModelRegistry``; close it when done)."""
    from e2eai.registry import ModelRegistry

    return ModelRegistry.from_settings(settings)


def fetch_model_dir(registry: Any, version: int, dest: Path) -> Path:
    """Download (sha256-verified) the model files of ``version`` into ``dest``."""
    record = registry.get(version)
    dest.mkdir(parents=True, exist_ok=True)
    for name in model_files():
        if name in record.artifacts:
            registry.fetch_artifact(version, name, dest)
    return dest


def current_champion(settings: Settings, dest: Path) -> RegisteredModel | None:
    """The champion of ``settings.serving.model_name``, loaded, or None if there is none."""
    registry = open_registry(settings)
    try:
        record = registry.champion(settings.serving.model_name)
        if record is None:
            return None
        model_dir = fetch_model_dir(registry, record.version, dest / f"champion-v{record.version}")
    finally:
        registry.close()
    return RegisteredModel(record.version, record.family, load_model(model_dir))
