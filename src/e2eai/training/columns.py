"""The model's raw input columns, taken from a training frame in schema order.

Missing categories become the empty string: ONNX string tensors cannot hold None, so the
exported graphs, the sklearn pipelines and the torch vocabulary all see the same ``""``
(never a known category, so it maps to "unknown" wherever a lookup happens).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from e2eai import schema
from e2eai.errors import TrainingDataError

MISSING_CATEGORY = ""


def model_input_frame(frame: pd.DataFrame, source: str = "training frame") -> pd.DataFrame:
    """The ``schema.model_features()`` columns of ``frame``: numeric float32, categorical str."""
    names = [f.name for f in schema.model_features()]
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise TrainingDataError(f"{source} lacks model feature column(s): {', '.join(missing)}")
    out: dict[str, np.ndarray] = {}
    for feature in schema.model_features():
        column = frame[feature.name]
        if feature.kind == "numeric":
            try:
                out[feature.name] = pd.to_numeric(column, errors="raise").to_numpy(np.float32)
            except (TypeError, ValueError) as exc:
                raise TrainingDataError(
                    f"{source}: numeric feature {feature.name!r} has non-numeric values ({exc})"
                ) from exc
        else:
            values = column.astype(object).where(column.notna(), MISSING_CATEGORY)
            out[feature.name] = values.map(str).to_numpy(object)
    return pd.DataFrame(out, index=frame.index)


def labels(frame: pd.DataFrame, source: str = "training frame") -> np.ndarray:
    """The 0/1 label column as int8, with a clear error when it is absent or not binary."""
    if schema.LABEL not in frame.columns:
        raise TrainingDataError(f"{source} lacks the label column {schema.LABEL!r}")
    y = frame[schema.LABEL].to_numpy()
    if len(y) and not np.isin(y, (0, 1)).all():
        raise TrainingDataError(f"{source}: label {schema.LABEL!r} has values other than 0/1")
    return y.astype(np.int8)
