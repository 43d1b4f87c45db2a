"""Saving and loading trained models of every family behind one interface.

A model directory holds ``model_info.json`` (family, feature names, parameters) and either
``model.pt`` + ``model_spec.json`` (torch) or ``model.joblib`` (scikit-learn).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e2eai import schema
from e2eai.errors import ModelArtifactError
from e2eai.training.columns import model_input_frame

INFO_FILE = "model_info.json"
MODEL_FILES = ("model_info.json", "model.pt", "model_spec.json", "model.joblib")
"""Files that make up a model directory (those present are registered as artifacts)."""


def write_info(model_dir: Path, family: str, params: dict[str, Any]) -> Path:
    info = {
        "family": family,
        "features": [f.name for f in schema.model_features()],
        "params": params,
    }
    path = model_dir / INFO_FILE
    path.write_text(json.dumps(info, indent=1))
    return path


def save_sklearn(pipeline: Any, model_dir: Path, family: str, params: dict[str, Any]) -> Path:
    """Write a fitted Pipeline and its info file into ``model_dir``."""
    import joblib

    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, model_dir / "model.joblib")
    write_info(model_dir, family, params)
    return model_dir


@dataclass
class LoadedModel:
    """A model of any family that turns raw training-frame rows into P(delayed)."""

    family: str
    model_dir: Path
    estimator: Any
    spec: Any = None  # TabularSpec for torch

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if self.family == "torch_mlp":
            from e2eai.training.mlp import mlp_proba

            return mlp_proba(self.estimator, self.spec, frame).astype(np.float64)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # OpenMP spin-waits on shared cores; 1 is faster
            return self.estimator.predict_proba(model_input_frame(frame))[:, 1]


def load_model(model_dir: Path) -> LoadedModel:
    """Load the model saved in ``model_dir``, whatever its family."""
    info_path = model_dir / INFO_FILE
    if not info_path.is_file():
        raise ModelArtifactError(f"{model_dir} is not a model directory: {INFO_FILE} is missing")
    family = json.loads(info_path.read_text())["family"]
    if family == "torch_mlp":
        for name in ("model.pt", "model_spec.json"):
            if not (model_dir / name).is_file():
                raise ModelArtifactError(f"{model_dir}: torch model lacks {name}")
        from e2eai.training.mlp import load_mlp

        model, spec = load_mlp(model_dir)
        return LoadedModel(family, model_dir, model, spec)
    if family in ("logreg", "hist_gb"):
        import joblib

        path = model_dir / "model.joblib"
        if not path.is_file():
            raise ModelArtifactError(f"{model_dir}: {family} model lacks model.joblib")
        return LoadedModel(family, model_dir, joblib.load(path))
    raise ModelArtifactError(f"{info_path}: unknown model family {family!r}")
