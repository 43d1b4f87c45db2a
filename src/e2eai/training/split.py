"""Train / validation / holdout splits of a training frame, by the task's split policy.

A task with an event timestamp is split by time, never at random: train, validation (the
last days of the training window) and holdout (the days after it), so the model is judged
on rows that happened after everything it learned from, as it will be in production.

A task without one is split by rows: a seeded shuffle, stratified on the label, into
holdout, validation and train. ``pool_fraction`` keeps only the first share of the training
rows in that seeded order, so a model trained on a smaller pool saw a subset of what a
model on a larger one sees, and both are scored on the same holdout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from e2eai.errors import TrainingDataError
from e2eai.training.columns import labels

if TYPE_CHECKING:
    from e2eai.config import TrainingSettings
    from e2eai.tasks import Task

PARTS = ("train", "validation", "holdout")


@dataclass(frozen=True)
class DataSplit:
    """Three disjoint parts of one frame and how they were cut (for lineage and reports).

    ``training_window`` / ``holdout_window`` describe the training and holdout parts:
    first and last day (inclusive) for a time split; row counts, shares and the seed for a
    stratified one.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    policy: Literal["time", "stratified"]
    training_window: dict[str, Any]
    holdout_window: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def time_based(self) -> bool:
        return self.policy == "time"

    def window(self) -> dict[str, Any]:
        """The training part for lineage: its days, or its rows."""
        return dict(self.training_window)

    def describe(self) -> dict[str, Any]:
        """Policy, the bounds of every part and its row count (JSON-ready)."""
        return {
            "policy": self.policy,
            **self.details,
            "rows": {name: len(getattr(self, name)) for name in PARTS},
        }


def split_frame(
    frame: pd.DataFrame, task: Task, training: TrainingSettings, require_holdout: bool = True
) -> DataSplit:
    """Split ``frame`` by the task's policy: by time with a timestamp, else stratified."""
    if task.time_based:
        return time_split(
            frame,
            task,
            training.train_start,
            training.train_end,
            training.validation_days,
            training.holdout_days,
            require_holdout=require_holdout,
        )
    return stratified_split(
        frame,
        task,
        holdout_fraction=training.holdout_fraction,
        validation_fraction=training.validation_fraction,
        pool_fraction=training.pool_fraction,
        seed=training.seed,
    )


def _day_start(day: date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def _check_parts(
    parts: dict[str, pd.DataFrame],
    bounds: dict[str, str],
    label: str,
    require_holdout: bool,
    kind: str,
    spans: str,
) -> None:
    for name, part in parts.items():
        if part.empty and (name != "holdout" or require_holdout):
            raise TrainingDataError(
                f"{kind} split: the {name} part ({bounds[name]}) has no rows; {spans}"
            )
        if name != "holdout" and part[label].nunique() < 2:
            raise TrainingDataError(
                f"{kind} split: the {name} part ({bounds[name]}) has one class only"
            )


def time_split(
    frame: pd.DataFrame,
    task: Task,
    train_start: date,
    train_end: date,
    validation_days: int,
    holdout_days: int,
    require_holdout: bool = True,
) -> DataSplit:
    """Split ``frame`` by ``task.timestamp`` (UTC days, inclusive bounds).

    train = [train_start, train_end − validation_days], validation = the last
    ``validation_days`` of the window, holdout = the ``holdout_days`` after ``train_end``.
    """
    column = task.timestamp
    if column is None:
        raise TrainingDataError(
            f"task {task.name!r} has no timestamp to split by time; it is split by rows"
        )
    if column not in frame.columns:
        raise TrainingDataError(f"training frame lacks {column!r}")
    if train_end < train_start:
        raise TrainingDataError(
            f"training.train_end {train_end} is before train_start {train_start}"
        )
    if validation_days < 1:
        raise TrainingDataError("training.validation_days must be at least 1")
    ts = pd.to_datetime(frame[column], utc=True)
    validation_start = train_end - timedelta(days=validation_days - 1)
    if validation_start <= train_start:
        raise TrainingDataError(
            f"training.validation_days={validation_days} leaves no training days in "
            f"{train_start}..{train_end}"
        )
    holdout_end = train_end + timedelta(days=holdout_days)
    t_start, t_val = _day_start(train_start), _day_start(validation_start)
    t_end, t_hold = (
        _day_start(train_end + timedelta(days=1)),
        _day_start(holdout_end + timedelta(days=1)),
    )
    parts = {
        "train": frame[(ts >= t_start) & (ts < t_val)],
        "validation": frame[(ts >= t_val) & (ts < t_end)],
        "holdout": frame[(ts >= t_end) & (ts < t_hold)],
    }
    days = {
        "train": (train_start, validation_start - timedelta(days=1)),
        "validation": (validation_start, train_end),
        "holdout": (train_end + timedelta(days=1), holdout_end),
    }
    bounds = {name: f"{first}..{last}" for name, (first, last) in days.items()}
    spans = f"the frame spans {ts.min()} .. {ts.max()}"
    _check_parts(parts, bounds, task.label, require_holdout, "time", spans)
    return DataSplit(
        train=parts["train"].reset_index(drop=True),
        validation=parts["validation"].reset_index(drop=True),
        holdout=parts["holdout"].reset_index(drop=True),
        policy="time",
        training_window={"start": train_start.isoformat(), "end": train_end.isoformat()},
        holdout_window={"start": days["holdout"][0].isoformat(), "end": holdout_end.isoformat()},
        details={
            "timestamp": column,
            "days": {
                name: {"start": first.isoformat(), "end": last.isoformat()}
                for name, (first, last) in days.items()
            },
        },
    )


def stratified_split(
    frame: pd.DataFrame,
    task: Task,
    holdout_fraction: float,
    validation_fraction: float,
    pool_fraction: float = 1.0,
    seed: int = 13,
) -> DataSplit:
    """Seeded shuffle per class of ``task.label`` into holdout, validation and train.

    Per class: the first ``holdout_fraction`` of its shuffled rows are held out, then
    ``validation_fraction`` of the rest validate, and of the remaining training rows the
    first ``pool_fraction`` are kept. Rows are ordered by ``task.row_id`` (when the frame
    has it) before shuffling, so the split does not depend on the frame's row order; the
    same seed and fractions give the same parts, and a smaller pool is a subset of a larger.
    """
    for name, value, upper_ok in (
        ("holdout_fraction", holdout_fraction, False),
        ("validation_fraction", validation_fraction, False),
        ("pool_fraction", pool_fraction, True),
    ):
        if not (0 < value < 1 or (upper_ok and value == 1)):
            limit = "(0, 1]" if upper_ok else "(0, 1)"
            raise TrainingDataError(f"training.{name}={value} is not in {limit}")
    if task.row_id in frame.columns:
        frame = frame.sort_values(task.row_id, kind="stable")
    frame = frame.reset_index(drop=True)
    y = labels(frame, task.label)
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[np.ndarray]] = {name: [] for name in PARTS}
    pool_rows = 0
    for cls in (0, 1):
        rows = np.flatnonzero(y == cls)
        rows = rows[rng.permutation(len(rows))]
        n_holdout = round(len(rows) * holdout_fraction)
        rest = rows[n_holdout:]
        n_validation = round(len(rest) * validation_fraction)
        training_rows = rest[n_validation:]
        pool_rows += len(training_rows)
        kept = math.ceil(len(training_rows) * pool_fraction)
        chosen["holdout"].append(rows[:n_holdout])
        chosen["validation"].append(rest[:n_validation])
        chosen["train"].append(training_rows[:kept])
    parts = {
        name: frame.iloc[np.sort(np.concatenate(chosen[name]))].reset_index(drop=True)
        for name in PARTS
    }
    bounds = {
        "holdout": f"{holdout_fraction:g} of the rows",
        "validation": f"{validation_fraction:g} of the rest",
        "train": f"{pool_fraction:g} of the remaining {pool_rows} rows",
    }
    _check_parts(parts, bounds, task.label, True, "stratified", f"the frame has {len(frame)} rows")
    return DataSplit(
        train=parts["train"],
        validation=parts["validation"],
        holdout=parts["holdout"],
        policy="stratified",
        training_window={
            "rows": len(parts["train"]),
            "pool_rows": pool_rows,
            "pool_fraction": pool_fraction,
            "seed": seed,
        },
        holdout_window={"rows": len(parts["holdout"]), "fraction": holdout_fraction, "seed": seed},
        details={
            "label": task.label,
            "seed": seed,
            "fractions": {
                "holdout": holdout_fraction,
                "validation": validation_fraction,
                "pool": pool_fraction,
            },
        },
    )
