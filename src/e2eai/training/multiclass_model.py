"""What every multi-class model shares, whatever one input is (an image, a message).

A multi-class model answers class probabilities ``[N, K]`` for the rows of a frame
(:meth:`MulticlassModel.predict_frame`); the tabular contract (``predict_proba`` →
P(positive)) does not apply to it, and it refuses it with a message that says so. The
multi-class run (:mod:`e2eai.training.multiclass_run`) scores any of them the same way.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from e2eai.errors import TrainingConfigError, TrainingDataError
from e2eai.training.family import LoadedModel

if TYPE_CHECKING:
    import pandas as pd

    from e2eai.tasks import Task


class MulticlassModel(LoadedModel):
    """A loaded model: rows of a frame → class probabilities ``[N, K]``."""

    modality: ClassVar[str]
    """What one input is (``image``, ``text``): a champion of another modality is no
    comparison for a candidate."""

    @abstractmethod
    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """P(class) as float64 ``[N, K]`` for the rows of ``frame`` (its input column)."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        raise TrainingConfigError(
            f"the {self.family} model classifies into several classes: use predict_frame or "
            "class_probabilities (there is no single positive class)"
        )


def task_classes(task: Task) -> int:
    """How many classes a multi-class task has (its ``classes``)."""
    classes = getattr(task, "classes", None)
    if not classes:
        raise TrainingConfigError(f"task {task.name!r} is not a multi-class task")
    return len(classes)


def frame_labels(frame: pd.DataFrame, label: str, classes: int) -> np.ndarray:
    """The class labels as int64, checked against ``range(classes)``."""
    if label not in frame.columns:
        raise TrainingDataError(f"a multi-class frame needs the label column {label!r}")
    y = frame[label].to_numpy()
    if len(y) and not np.isin(y, np.arange(classes)).all():
        raise TrainingDataError(f"label {label!r} has values outside 0–{classes - 1}")
    return y.astype(np.int64)
