"""Replayed production traffic on a clock: requests by the hour, outcomes when they happen.

:class:`HourlyTraffic` cuts a task's replay traffic (``Task.replay_traffic``) into the
hours its requests are made in; :class:`Outcomes` holds the labels of answered requests
until the clock passes the moment each became known (a flight's landing), so feedback
reaches the app as it would in production: late, and in the order it happens.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Hour:
    """The requests made in one hour of the replay clock."""

    start: pd.Timestamp
    rows: pd.DataFrame


class HourlyTraffic:
    """A replay's requests grouped by the hour they are made in, oldest first."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.reset_index(drop=True)
        hours = pd.to_datetime(self.frame["request_time"], utc=True).dt.floor("h")
        self._bounds = np.flatnonzero(np.r_[True, hours.to_numpy()[1:] != hours.to_numpy()[:-1]])
        self._hours = hours.iloc[self._bounds].tolist()
        self._ends = [*self._bounds[1:], len(self.frame)]

    def __len__(self) -> int:
        return len(self._hours)

    def __iter__(self) -> Iterator[Hour]:
        for start, first, last in zip(self._hours, self._bounds, self._ends, strict=True):
            yield Hour(pd.Timestamp(start), self.frame.iloc[first:last])


@dataclass
class Outcomes:
    """Labels waiting for their time: ``due(t)`` hands out those known by ``t``."""

    _heap: list[tuple[int, int, str, int]] = field(default_factory=list)
    _seq: int = 0

    def add(self, known_at: pd.Series, prediction_ids: list[str], labels: pd.Series) -> None:
        stamps = pd.to_datetime(known_at, utc=True).to_numpy("datetime64[ns]").astype("int64")
        for stamp, pid, label in zip(stamps, prediction_ids, labels.tolist(), strict=True):
            self._seq += 1
            heapq.heappush(self._heap, (int(stamp), self._seq, pid, int(label)))

    def due(self, until: pd.Timestamp) -> list[tuple[str, int]]:
        bound = pd.Timestamp(until).value
        out = []
        while self._heap and self._heap[0][0] <= bound:
            _, _, pid, label = heapq.heappop(self._heap)
            out.append((pid, label))
        return out

    def __len__(self) -> int:
        return len(self._heap)
