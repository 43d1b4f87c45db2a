"""Feature values reach the online store as a clock passes them, never from the future.

A live deployment's feature pipelines push each hour's values when the hour is known; a
replay does the same with a clock: :class:`OnlineFeed` holds every feature view's source
rows (the Parquet sources the offline store reads) and, as the clock advances to ``t``,
writes to the online store (Feast ``write_to_online_store``) the rows stamped after the
previous tick and at or before ``t``. Of several rows of one entity in that span only the
latest is written: it is what the store would hold after writing them all in order.

Views whose source is stamped once before the clock starts (static attributes) are loaded
by :func:`~e2eai.features.store.materialize_repo` up to the start and never written again.
Works on any applied Feast repo with file sources; nothing here knows a task.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from e2eai.features.store import FeatureStoreError, open_feature_store, repo_dir


def serving_repo(source: Path, dest: Path) -> Path:
    """A Feast repo for serving that shares ``source``'s registry and offline sources but has
    its own, empty online store (what a replay fills as its clock advances).

    The registry records each source by absolute path, so the copy reads the same Parquet;
    training can keep materializing ``source``'s online store meanwhile.
    """
    source = repo_dir(source)
    data = dest / "data"
    if dest.exists():
        shutil.rmtree(dest)
    data.mkdir(parents=True)
    shutil.copy2(source / "feature_store.yaml", dest / "feature_store.yaml")
    registry = source / "data" / "registry.db"
    if not registry.is_file():
        raise FeatureStoreError(f"{source}: no registry (run `e2eai features apply` first)")
    shutil.copy2(registry, data / "registry.db")
    # Applying the registered objects again creates the copy's online tables.
    store = open_feature_store(dest)
    objects = [*store.list_entities(), *store.list_feature_views()]
    with contextlib.redirect_stdout(sys.stderr):
        store.apply([*objects, *store.list_feature_services()])
    return dest


@dataclass
class _ViewRows:
    name: str
    keys: list[str]
    frame: pd.DataFrame  # sorted by timestamp
    stamps: np.ndarray  # int64 ns, sorted


class OnlineFeed:
    """Write a repo's feature rows to its online store as a clock advances past them."""

    def __init__(self, repo: Path, start: datetime) -> None:
        self.repo = repo_dir(repo)
        self.store = open_feature_store(self.repo)
        self.clock = pd.Timestamp(start)
        self.rows_written = 0
        self.writes = 0
        self._views: list[_ViewRows] = []
        for view in self.store.list_feature_views():
            if not view.online:
                continue
            stamp = view.batch_source.timestamp_field
            frame = pd.read_parquet(view.batch_source.path)
            frame = frame[pd.to_datetime(frame[stamp], utc=True) >= self.clock]
            if frame.empty:  # static attributes: materialized once, before the start
                continue
            frame = frame.sort_values(stamp, kind="stable").reset_index(drop=True)
            stamps = pd.to_datetime(frame[stamp], utc=True).to_numpy("datetime64[ns]")
            keys = [e.name for e in view.entity_columns]
            self._views.append(_ViewRows(view.name, keys, frame, stamps.astype("int64")))
        self._offsets = [0] * len(self._views)

    @property
    def views(self) -> list[str]:
        return [v.name for v in self._views]

    def advance(self, until: datetime) -> int:
        """Write every row stamped in (clock, until]; the clock becomes ``until``."""
        until = pd.Timestamp(until)
        if until < self.clock:
            raise ValueError(f"the clock runs forward: {until} is before {self.clock}")
        bound = until.value
        written = 0
        for i, view in enumerate(self._views):
            first = self._offsets[i]
            last = int(np.searchsorted(view.stamps, bound, side="right"))
            if last <= first:
                continue
            rows = view.frame.iloc[first:last]
            rows = rows.drop_duplicates(view.keys, keep="last")
            with contextlib.redirect_stdout(sys.stderr):
                self.store.write_to_online_store(view.name, rows)
            self._offsets[i] = last
            written += len(rows)
            self.writes += 1
        self.clock = until
        self.rows_written += written
        return written
