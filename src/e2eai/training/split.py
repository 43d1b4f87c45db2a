"""Time-based split of a training window: train, validation (its last days), holdout (after).

Time order, never random: the model is judged on flights that departed after everything it
learned from, as it will be in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from e2eai import schema
from e2eai.errors import TrainingDataError


@dataclass(frozen=True)
class TimeSplit:
    """Three disjoint, time-ordered parts of one frame and the days that bound them."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    train_start: date
    validation_start: date
    train_end: date
    holdout_end: date

    def window(self) -> dict[str, str]:
        """The training window for lineage: first and last day (inclusive)."""
        return {"start": self.train_start.isoformat(), "end": self.train_end.isoformat()}


def _day_start(day: date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def time_split(
    frame: pd.DataFrame,
    train_start: date,
    train_end: date,
    validation_days: int,
    holdout_days: int,
    require_holdout: bool = True,
) -> TimeSplit:
    """Split ``frame`` by ``schema.EVENT_TIMESTAMP`` (UTC days, inclusive bounds).

    train = [train_start, train_end − validation_days], validation = the last
    ``validation_days`` of the window, holdout = the ``holdout_days`` after ``train_end``.
    """
    if schema.EVENT_TIMESTAMP not in frame.columns:
        raise TrainingDataError(f"training frame lacks {schema.EVENT_TIMESTAMP!r}")
    if train_end < train_start:
        raise TrainingDataError(
            f"training.train_end {train_end} is before train_start {train_start}"
        )
    if validation_days < 1:
        raise TrainingDataError("training.validation_days must be at least 1")
    ts = pd.to_datetime(frame[schema.EVENT_TIMESTAMP], utc=True)
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
    bounds = {
        "train": f"{train_start}..{validation_start - timedelta(days=1)}",
        "validation": f"{validation_start}..{train_end}",
        "holdout": f"{train_end + timedelta(days=1)}..{holdout_end}",
    }
    for name, part in parts.items():
        if part.empty and (name != "holdout" or require_holdout):
            raise TrainingDataError(
                f"time split: the {name} part ({bounds[name]}) has no rows; the frame spans "
                f"{ts.min()} .. {ts.max()}"
            )
        if name != "holdout" and part[schema.LABEL].nunique() < 2:
            raise TrainingDataError(
                f"time split: the {name} part ({bounds[name]}) has one class only"
            )
    return TimeSplit(
        train=parts["train"].reset_index(drop=True),
        validation=parts["validation"].reset_index(drop=True),
        holdout=parts["holdout"].reset_index(drop=True),
        train_start=train_start,
        validation_start=validation_start,
        train_end=train_end,
        holdout_end=holdout_end,
    )
