"""The data stage: ingest → snapshot → validate → clean, with exact row accounting.

What is particular to a task's data (its tables, checks and cleaning) is the task's
``prepare_data`` (``Task.prepare_data(settings)`` runs the stage); this module holds what
every task's data stage shares: the accounting
(``rows_in = rows_accepted + rows_quarantined + rows_excluded`` always holds; every row
that is not accepted is written with its reason) and the all-at-once publication of the
outputs (a staging folder renamed into place, so a failed run leaves the previous outputs
untouched).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from e2eai.config import Settings
from e2eai.errors import E2eaiError

PREPARED = "prepared"
REASON_CODE = "reason_code"
REASON = "reason"
SOURCE_ROW = "source_row"
ROWS = "rows"
"""Name of the prepared table of a task's accepted rows (``<data_dir>/prepared/rows.parquet``)."""


@dataclass(frozen=True)
class PreparedData:
    """Where the prepared tables of a run are, and how every input row was accounted for."""

    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    rows_excluded: int
    quarantined_by_reason: dict[str, int]
    excluded_by_reason: dict[str, int]
    snapshot: str
    snapshot_manifest: str
    directory: Path
    quality_report: Path

    def table(self, name: str) -> Path:
        """The prepared table ``name`` (``flights``, ``rows`` …) as Parquet."""
        return self.directory / f"{name}.parquet"

    @property
    def flights_path(self) -> Path:
        return self.table("flights")

    def summary(self) -> dict[str, object]:
        return {
            "rows_in": self.rows_in,
            "rows_accepted": self.rows_accepted,
            "rows_quarantined": self.rows_quarantined,
            "rows_excluded": self.rows_excluded,
            "quarantined_by_reason": self.quarantined_by_reason,
            "excluded_by_reason": self.excluded_by_reason,
            "snapshot": self.snapshot,
            "snapshot_manifest": self.snapshot_manifest,
            "prepared_dir": str(self.directory),
            "quality_report": str(self.quality_report),
        }


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows set aside keep their values as text: one schema for every reason."""
    out = frame.copy()
    for column in out.columns:
        if column != SOURCE_ROW:
            out[column] = out[column].astype("string")
    return out


def reason_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Rows per reason code of a quarantine or exclusion table."""
    return {str(k): int(v) for k, v in frame[REASON_CODE].value_counts().items()}


def check_accounting(rows_in: int, accepted: int, quarantined: int, excluded: int) -> None:
    """An invariant, not an input problem: a broken accounting fails loudly."""
    if accepted + quarantined + excluded != rows_in:
        raise AssertionError(
            f"row accounting broken: {rows_in} in, {accepted + quarantined + excluded} "
            "accounted for"
        )


@contextlib.contextmanager
def publishing(settings: Settings) -> Iterator[Path]:
    """A staging folder for the prepared tables, renamed into place when the block succeeds.

    On any error the staging folder is removed and the previous outputs stay as they were.
    """
    final = settings.data_dir / PREPARED
    staging = settings.data_dir / f".staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        yield staging
        if final.exists():
            retired = settings.data_dir / f".retired-{uuid.uuid4().hex[:8]}"
            final.rename(retired)
            shutil.rmtree(retired)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_manifest(directory: Path, snapshot_id: str, manifest_uri: str) -> None:
    (directory / "manifest.json").write_text(
        json.dumps({"snapshot": snapshot_id, "manifest": manifest_uri}, indent=2)
    )


def load_prepared(settings: Settings, names: tuple[str, ...]) -> dict[str, Path]:
    """Paths of the prepared tables ``names`` of the last data run (raises if there is none)."""
    directory = settings.data_dir / PREPARED
    if not (directory / "manifest.json").is_file():
        raise E2eaiError(f"no prepared data under {directory}: run `e2eai data prepare` first")
    return {name: directory / f"{name}.parquet" for name in names}
