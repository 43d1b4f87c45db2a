"""The model's raw input columns, taken from a frame in the order of the task's features.

Missing categories become the empty string: ONNX string tensors cannot hold None, so the
exported graphs, the sklearn pipelines and the torch vocabulary all see the same ``""``
(never a known category, so it maps to "unknown" wherever a lookup happens).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from e2eai.errors import TrainingDataError

if TYPE_CHECKING:
    from e2eai.schema import Kind
    from e2eai.tasks import Task

MISSING_CATEGORY = ""


def input_columns(
    frame: pd.DataFrame, kinds: Mapping[str, Kind], source: str = "training frame"
) -> pd.DataFrame:
    """The ``kinds`` columns of ``frame``, in that order: numeric float32, categorical str."""
    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        raise TrainingDataError(f"{source} lacks model feature column(s): {', '.join(missing)}")
    out: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        column = frame[name]
        if kind == "numeric":
            try:
                out[name] = pd.to_numeric(column, errors="raise").to_numpy(np.float32)
            except (TypeError, ValueError) as exc:
                raise TrainingDataError(
                    f"{source}: numeric feature {name!r} has non-numeric values ({exc})"
                ) from exc
        else:
            values = column.astype(object).where(column.notna(), MISSING_CATEGORY)
            out[name] = values.map(str).to_numpy(object)
    return pd.DataFrame(out, index=frame.index)


def feature_kinds(task: Task) -> dict[str, Kind]:
    """The task's model inputs and their kinds, in signature order."""
    return {f.name: f.kind for f in task.features}


def model_input_frame(
    frame: pd.DataFrame, task: Task, source: str = "training frame"
) -> pd.DataFrame:
    """The task's model input columns of ``frame`` (see :func:`input_columns`)."""
    return input_columns(frame, feature_kinds(task), source)


def labels(frame: pd.DataFrame, label: str, source: str = "training frame") -> np.ndarray:
    """The 0/1 ``label`` column as int8, with a clear error when it is absent or not binary."""
    if label not in frame.columns:
        raise TrainingDataError(f"{source} lacks the label column {label!r}")
    y = frame[label].to_numpy()
    if len(y) and not np.isin(y, (0, 1)).all():
        raise TrainingDataError(f"{source}: label {label!r} has values other than 0/1")
    return y.astype(np.int8)
