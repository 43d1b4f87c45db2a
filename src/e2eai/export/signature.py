"""The ONNX input signature, derived from the schema, and feeds that follow it.

One graph input per ``schema.model_features()`` feature, named as the feature, shape
[N, 1]: float32 for numeric (NaN = missing), string for categorical ("" = missing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from e2eai import schema
from e2eai.training.columns import model_input_frame

OUTPUT_NAME = "probability"


def input_signature() -> list[tuple[str, str]]:
    """(name, onnx dtype) of every graph input, in schema order."""
    return [(f.name, f.onnx_dtype) for f in schema.model_features()]


def onnx_feed(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Raw feature columns of ``frame`` as ONNX Runtime inputs ([N, 1] each)."""
    x = model_input_frame(frame, "ONNX feed")
    feed: dict[str, np.ndarray] = {}
    for name, dtype in input_signature():
        column = x[name].to_numpy()
        feed[name] = (
            column.astype(np.float32) if dtype == "float32" else column.astype(object)
        ).reshape(-1, 1)
    return feed


def onnx_proba(session, frame: pd.DataFrame) -> np.ndarray:
    """P(delayed) from an ONNX Runtime session for every row of ``frame`` (float64, [N])."""
    (output,) = session.run([OUTPUT_NAME], onnx_feed(frame))
    return np.asarray(output, dtype=np.float64).reshape(-1)
