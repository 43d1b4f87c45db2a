"""A model directory's self-description: ``model_info.json``.

Every family writes it next to its own files: the family's name (which family loads the
directory), the task the model was trained for, the task's feature names in signature
order, and the hyper-parameters. Loading by family is :func:`e2eai.training.families.load_model`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e2eai.errors import ModelArtifactError

if TYPE_CHECKING:
    from e2eai.tasks import Task

INFO_FILE = "model_info.json"


def write_info(model_dir: Path, family: str, task: Task, params: dict[str, Any]) -> Path:
    """Write ``model_info.json`` for a model of ``family`` trained on ``task``."""
    info = {
        "family": family,
        "task": task.name,
        "features": task.feature_names,
        "params": params,
    }
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / INFO_FILE
    path.write_text(json.dumps(info, indent=1))
    return path


def read_info(model_dir: Path) -> dict[str, Any]:
    """The parsed ``model_info.json`` of ``model_dir``."""
    path = model_dir / INFO_FILE
    if not path.is_file():
        raise ModelArtifactError(f"{model_dir} is not a model directory: {INFO_FILE} is missing")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelArtifactError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(info, dict) or "family" not in info:
        raise ModelArtifactError(f"{path} does not name the model's family")
    return info
