"""Training for image-classification tasks: the multi-class run, under the image names.

Image tasks (``modality`` ``image``) train through :mod:`e2eai.training.multiclass_run`,
which text tasks share: a seeded split by rows stratified on the class, the chosen family
(the CNN) and the pixel baseline, holdout metrics, and gates on holdout accuracy (the
task's ``gate_metric`` default). This module keeps the names the image code and its tests
use.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from e2eai.config import Settings
from e2eai.tasks import Task
from e2eai.training.multiclass_run import (
    ClassSplit,
    classification_metrics,
    plot_confusion,
    run_multiclass_training,
    stratified_class_split,
)
from e2eai.training.run import TrainingResult

ImageSplit = ClassSplit

__all__ = [
    "ImageSplit",
    "classification_metrics",
    "plot_confusion",
    "run_image_training",
    "stratified_class_split",
]


def run_image_training(
    settings: Settings,
    task: Task,
    frame: pd.DataFrame | None = None,
    warm_start_from: int | None = None,
    run_dir: Path | None = None,
) -> TrainingResult:
    """Train the image task's chosen family and its baseline; evaluate on the holdout; gate."""
    return run_multiclass_training(settings, task, frame, warm_start_from, run_dir)
