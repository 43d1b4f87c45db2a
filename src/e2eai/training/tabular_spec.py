"""What a torch model must know about its inputs: vocabularies and numeric statistics.

Saved next to the weights (``model_spec.json``) so that the model, its ONNX export and a
later fine-tune all look categories up the same way: index 0 is "unknown" (and missing),
known categories are 1..K in the order they were first learned. Indices never move, so a
fine-tune can append categories the champion never saw.

Numeric preprocessing learned here (and applied inside the module, so serving sends raw
values): median imputation, a missing-value indicator for columns that had gaps in
training, clipping to the training range (an MLP would otherwise extrapolate linearly on,
say, a month it never saw, where trees stay flat), log1p of heavy-tailed non-negative
columns, then standardisation.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from e2eai.training.columns import MISSING_CATEGORY, input_columns, model_input_frame

if TYPE_CHECKING:
    from e2eai.schema import Kind
    from e2eai.tasks import Task

_HEAVY_TAIL = 2.0
"""Skewness above which a non-negative column is log1p-transformed (precipitation)."""


def task_crosses(task: Task) -> list[list[str]]:
    """The task's hashed-cross pairs whose both columns are model inputs of the task.

    A cross component is categorical or an integer-valued numeric (``dep_hour``).
    """
    names = set(task.feature_names)
    return [list(pair) for pair in task.crosses if set(pair) <= names]


@dataclass(frozen=True)
class MLPParams:
    """Architecture and optimiser hyper-parameters of the tabular MLP."""

    learning_rate: float = 2e-3
    hidden_width: int = 128
    depth: int = 2
    dropout: float = 0.2
    optimizer: str = "adam"
    batch_size: int = 1024
    embedding_dim: int = 8
    weight_decay: float = 0.01
    lr_schedule: str = "cosine"  # "constant" | "cosine" | "onecycle" (per step)
    # Wide & Deep: a linear "wide" logit (numerics, one weight per category and per hashed
    # cross bucket) added to the MLP's, so the model contains logistic regression.
    wide: bool = True
    cross_buckets: int = 2048  # rows of each hashed cross table; 0 = no crosses
    deep_lr_factor: float = 0.1  # learning rate of the deep part relative to the wide part
    numeric_bins: int = 16  # wide path: quantile bins per numeric (a weight each); 0 = none


def _bin_edges(filled: np.ndarray, bins: int) -> list[list[float]]:
    """Distinct inner quantiles per column: a column with few values gets few bins."""
    if bins < 2:
        return []
    quantiles = np.quantile(filled, np.linspace(0, 1, bins + 1)[1:-1], axis=0)
    return [np.unique(quantiles[:, j]).astype(np.float32).tolist() for j in range(filled.shape[1])]


@dataclass(frozen=True)
class TabularSpec:
    """Input columns, category vocabularies and numeric fill/mean/std of one torch model."""

    numeric: list[str]
    categorical: list[str]
    vocab: dict[str, list[str]]
    fill: list[float]
    mean: list[float]
    std: list[float]
    params: MLPParams = field(default_factory=MLPParams)
    # Specs saved before these existed load with neutral values (no clip, log or indicator).
    lower: list[float] | None = None
    upper: list[float] | None = None
    log1p: list[bool] | None = None
    missing_indicator: list[bool] | None = None
    crosses: list[list[str]] | None = None  # pairs of input columns (wide path)
    bin_edges: list[list[float]] | None = None  # per numeric: ascending quantile edges

    @classmethod
    def fit(cls, train: pd.DataFrame, params: MLPParams, task: Task) -> TabularSpec:
        """Learn vocabularies (sorted, so reproducible) and statistics from the training part.

        The inputs are the task's features; the wide path's crosses are the task's.
        """
        x = model_input_frame(train, task)
        numeric, categorical = task.numeric_features, task.categorical_features
        values = x[numeric].to_numpy(np.float64)
        with np.errstate(all="ignore"):
            fill = np.nanmedian(values, axis=0)
        fill = np.where(np.isnan(fill), 0.0, fill)  # an all-missing column imputes 0
        filled = np.where(np.isnan(values), fill, values)
        lower, upper = filled.min(axis=0), filled.max(axis=0)
        log1p = (lower >= 0) & (pd.DataFrame(filled).skew().fillna(0).to_numpy() > _HEAVY_TAIL)
        transformed = np.where(log1p, np.log1p(np.maximum(filled, 0)), filled)
        std = transformed.std(axis=0)
        vocab = {
            name: sorted(v for v in x[name].unique() if v != MISSING_CATEGORY)
            for name in categorical
        }
        return cls(
            numeric=numeric,
            categorical=categorical,
            vocab=vocab,
            fill=fill.tolist(),
            mean=transformed.mean(axis=0).tolist(),
            std=np.where(std < 1e-6, 1.0, std).tolist(),
            params=params,
            lower=lower.tolist(),
            upper=upper.tolist(),
            log1p=log1p.tolist(),
            missing_indicator=np.isnan(values).any(axis=0).tolist(),
            crosses=task_crosses(task) if params.wide and params.cross_buckets else [],
            bin_edges=_bin_edges(filled, params.numeric_bins if params.wide else 0),
        )

    def binned_edges(self) -> np.ndarray:
        """Bin edges as a [F, K] array, padded with +inf (a value is never above those)."""
        edges = self.bin_edges or []
        width = max((len(e) for e in edges), default=0)
        out = np.full((len(self.numeric), width), np.inf, dtype=np.float32)
        for j, column in enumerate(edges):
            out[j, : len(column)] = column
        return out

    def kinds(self) -> dict[str, Kind]:
        """The input columns this spec reads and their kinds (numeric first)."""
        return {
            **{name: "numeric" for name in self.numeric},
            **{name: "categorical" for name in self.categorical},
        }

    def cardinalities(self) -> list[int]:
        """Embedding rows per categorical feature (one more than the vocabulary: unknown)."""
        return [len(self.vocab[name]) + 1 for name in self.categorical]

    def with_params(self, params: MLPParams) -> TabularSpec:
        """Same vocabularies and statistics, other hyper-parameters.

        Crosses and bin edges were learned by ``fit``: ``numeric_bins`` / ``wide`` here can
        only switch off what ``fit`` prepared, not add what it did not.
        """
        return replace(self, params=params)

    def numeric_transform(self) -> dict[str, list]:
        """Per numeric column: fill, lower, upper, log1p, mean, std, missing indicator."""
        n = len(self.numeric)
        return {
            "fill": self.fill,
            "lower": self.lower if self.lower is not None else [-math.inf] * n,
            "upper": self.upper if self.upper is not None else [math.inf] * n,
            "log1p": self.log1p if self.log1p is not None else [False] * n,
            "mean": self.mean,
            "std": self.std,
            "missing_indicator": (
                self.missing_indicator if self.missing_indicator is not None else [False] * n
            ),
        }

    def extended_with(self, frame: pd.DataFrame) -> TabularSpec:
        """This spec with categories of ``frame`` it has not seen appended (old indices kept)."""
        x = input_columns(frame, self.kinds())
        vocab = {}
        for name in self.categorical:
            known = set(self.vocab[name])
            new = sorted(v for v in x[name].unique() if v not in known and v != MISSING_CATEGORY)
            vocab[name] = [*self.vocab[name], *new]
        return replace(self, vocab=vocab)

    def encode(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Raw numeric values (float32, NaN kept) and category indices (int64, unknown → 0)."""
        x = input_columns(frame, self.kinds())
        numeric = x[self.numeric].to_numpy(np.float32)
        indices = np.zeros((len(x), len(self.categorical)), dtype=np.int64)
        for j, name in enumerate(self.categorical):
            lookup = {value: i + 1 for i, value in enumerate(self.vocab[name])}
            indices[:, j] = x[name].map(lookup).fillna(0).to_numpy(np.int64)
        return numeric, indices

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> TabularSpec:
        raw = json.loads(path.read_text())
        # Specs saved before Wide & Deep describe a plain MLP: their weights have no wide path.
        raw["params"].setdefault("wide", False)
        raw["params"] = MLPParams(**raw["params"])
        return cls(**raw)
