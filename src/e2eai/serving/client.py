"""Client side of the Open Inference Protocol for a task's model.

Builds V2 requests from model-input rows (one named tensor per task feature) and reads
the probabilities back, so that replays, the app and tests speak the protocol the same way.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from e2eai.tasks import Task


def v2_request(rows: pd.DataFrame, task: Task) -> dict[str, Any]:
    """A V2 inference request for model-input ``rows`` (missing values sent as null)."""
    inputs = []
    for feature in task.features:
        column = rows[feature.name]
        if feature.kind == "numeric":
            data = [None if math.isnan(v) else float(v) for v in column.astype("float64")]
        else:
            data = [None if v is None or v != v else str(v) for v in column]
        inputs.append(
            {"name": feature.name, "shape": [len(rows), 1], "datatype": feature.v2_datatype,
             "data": data}
        )  # fmt: skip
    return {"inputs": inputs}


def v2_probabilities(response: dict[str, Any]) -> list[float]:
    """The ``probability`` output of a V2 inference response."""
    for output in response.get("outputs", []):
        if output.get("name") == "probability":
            return [float(p) for p in output["data"]]
    raise ValueError(f"no 'probability' output in response: {list(response)}")


def placeholder_request(task: Task) -> dict[str, Any]:
    """A valid one-row V2 request: every numeric input at its lower bound (or 0), every
    categorical input an unknown category. For warm-ups and smoke checks, not predictions."""
    row = {f.name: (float(f.minimum or 0.0) if f.kind == "numeric" else "?") for f in task.features}
    return v2_request(pd.DataFrame([row]), task)
