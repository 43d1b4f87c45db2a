"""The ONNX input signature, derived from the task, and feeds that follow it.

One graph input per task feature (``task.features``, in order), named as the feature, shape
[N, 1]: float32 for numeric (NaN = missing), string for categorical ("" = missing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e2eai.training.columns import model_input_frame

if TYPE_CHECKING:
    from e2eai.tasks import Task

OUTPUT_NAME = "probability"


def input_signature(task: Task) -> list[tuple[str, str]]:
    """(name, onnx dtype) of every graph input, in the task's feature order."""
    return [(f.name, f.onnx_dtype) for f in task.features]


def onnx_feed(frame: pd.DataFrame, task: Task) -> dict[str, np.ndarray]:
    """The task's feature columns of ``frame`` as ONNX Runtime inputs ([N, 1] each)."""
    x = model_input_frame(frame, task, "ONNX feed")
    feed: dict[str, np.ndarray] = {}
    for name, dtype in input_signature(task):
        column = x[name].to_numpy()
        feed[name] = (
            column.astype(np.float32) if dtype == "float32" else column.astype(object)
        ).reshape(-1, 1)
    return feed


def onnx_proba(session: Any, frame: pd.DataFrame, task: Task) -> np.ndarray:
    """P(positive) from an ONNX Runtime session for every row of ``frame`` (float64, [N])."""
    (output,) = session.run([OUTPUT_NAME], onnx_feed(frame, task))
    return np.asarray(output, dtype=np.float64).reshape(-1)
