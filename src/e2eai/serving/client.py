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
    """A V2 inference request for model-input ``rows`` (missing values sent as null).

    Image tasks: one FP32 tensor ``[N, C, H, W]`` of the rows' images in [0, 1]; text tasks:
    one BYTES tensor ``[N]`` of the messages.
    """
    if task.modality == "image":
        from e2eai.training.image_families import frame_images

        shape = tuple(getattr(task, "image_shape", (1, 28, 28)))
        images = frame_images(rows, shape[1:])
        return {"inputs": [image_tensor(task.features[0].name, images)]}
    if task.modality == "text":  # the messages themselves; the predictor tokenizes
        name = task.features[0].name
        texts = [str(v) for v in rows[name]]
        return {"inputs": [{"name": name, "shape": [len(texts)], "datatype": "BYTES",
                            "data": texts}]}  # fmt: skip
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


def image_tensor(name: str, images: Any) -> dict[str, Any]:
    """A V2 FP32 input of images ``[N, C, H, W]`` (a numpy array in [0, 1])."""
    return {"name": name, "shape": list(images.shape), "datatype": "FP32",
            "data": images.reshape(-1).tolist()}  # fmt: skip


def v2_probabilities(response: dict[str, Any]) -> list[Any]:
    """The ``probability`` output of a V2 inference response: one float per row, or one list
    of class probabilities per row when its shape is ``[N, K]``."""
    for output in response.get("outputs", []):
        if output.get("name") == "probability":
            values = [float(p) for p in output["data"]]
            shape = output.get("shape") or [len(values)]
            if len(shape) == 2 and shape[1] > 1:
                k = int(shape[1])
                return [values[i : i + k] for i in range(0, len(values), k)]
            return values
    raise ValueError(f"no 'probability' output in response: {list(response)}")


def placeholder_request(task: Task) -> dict[str, Any]:
    """A valid one-row V2 request: every numeric input at its lower bound (or 0), every
    categorical input an unknown category (a black image for image tasks). For warm-ups and
    smoke checks, not predictions."""
    if task.modality == "image":
        import numpy as np

        shape = tuple(getattr(task, "image_shape", (1, 28, 28)))
        return {"inputs": [image_tensor(task.features[0].name, np.zeros((1, *shape)))]}
    if task.modality == "text":
        return v2_request(pd.DataFrame({task.features[0].name: ["warm-up"]}), task)
    row = {f.name: (float(f.minimum or 0.0) if f.kind == "numeric" else "?") for f in task.features}
    return v2_request(pd.DataFrame([row]), task)
