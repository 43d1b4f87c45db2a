"""A task file's data stage: read → snapshot → validate → exclude → publish, exactly accounted.

``rows_in = rows_accepted + rows_quarantined + rows_excluded``: a row that breaks the task
file's schema (type, null, range, category, label value, duplicate key) is quarantined with
its reason; a valid row whose label is missing is excluded (``missing_label``) — it cannot
be learned from, but nothing is wrong with it. A row with a missing label *and* a bad value
is quarantined: bad data is reported first. The prepared table ``rows.parquet`` holds the
accepted rows typed (numbers as float64, categories as text, the timestamp in UTC) with the
0/1 label.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from e2eai.config import Settings
from e2eai.data.prepare import (
    PREPARED,
    REASON,
    REASON_CODE,
    ROWS,
    SOURCE_ROW,
    PreparedData,
    as_text,
    check_accounting,
    load_prepared,
    publishing,
    reason_counts,
    write_manifest,
)
from e2eai.data.snapshot import write_snapshot
from e2eai.storage import open_store
from e2eai.tasks.table_source import MissingColumnsError, read_source_table
from e2eai.tasks.tabular_quality import write_tabular_quality_report
from e2eai.tasks.tabular_validation import validate_rows
from e2eai.tasks.task_file import LABEL, ROW_ID, TaskFileSpec, check_columns_present

if TYPE_CHECKING:
    from e2eai.tasks.tabular import TabularTask


def read_raw_rows(task: TabularTask, settings: Settings) -> pd.DataFrame:
    """The declared columns of the task's table; a column the data lacks is a TaskError."""
    spec = task.spec
    columns = tuple(dict.fromkeys(name for name, _ in spec.data_columns()))
    try:
        return read_source_table(spec.data.source, columns, settings.artifacts)
    except MissingColumnsError as exc:
        check_columns_present(task.file, spec, exc.found)
        raise  # every declared column was found after all: the table's problem, not ours


def label_values(valid: pd.DataFrame, spec: TaskFileSpec) -> pd.Series:
    """The 0/1 label of typed rows whose label is present."""
    raw = valid[spec.label.column]
    if spec.label.threshold is not None:
        return (raw >= spec.label.threshold).astype("int8")
    return raw.isin(spec.label.positive or ()).astype("int8")


def prepared_rows(accepted: pd.DataFrame, spec: TaskFileSpec) -> pd.DataFrame:
    """Accepted rows in the prepared table's shape: ids, [timestamp], label, columns."""
    out = pd.DataFrame(index=accepted.index)
    key = accepted[spec.key_column].astype(str)
    if spec.timestamp:
        stamps = accepted[spec.timestamp]
        out[ROW_ID] = key + "@" + stamps.map(lambda t: t.isoformat())
    out[spec.key_column] = key
    if spec.timestamp:
        out[spec.timestamp] = accepted[spec.timestamp]
    out[LABEL] = label_values(accepted, spec)
    if spec.label.column != LABEL:
        out[spec.label.column] = accepted[spec.label.column]
    for column in spec.columns:
        values = accepted[column.name]
        if column.kind == "numeric":
            out[column.name] = values.astype("float64")
        else:
            out[column.name] = values.astype(object).where(values.notna(), None)
    out[SOURCE_ROW] = accepted.index.astype("int64")
    if spec.timestamp:
        out = out.sort_values([spec.timestamp, ROW_ID], kind="stable")
    return out.reset_index(drop=True)


def prepare_tabular(task: TabularTask, settings: Settings) -> PreparedData:
    """Run the data stage of a task file: the accounting and where the outputs are."""
    spec = task.spec
    raw = read_raw_rows(task, settings)
    snapshot = write_snapshot({ROWS: raw}, spec.data.source, open_store(settings.artifacts))

    frame = raw.copy()
    if spec.generated_key:
        frame[spec.key_column] = frame.index.astype(str)  # the source row: stable per file
    outcome = validate_rows(frame, spec)
    missing_label = outcome.valid[spec.label.column].isna()
    accepted = outcome.valid[~missing_label]
    excluded = frame.loc[outcome.valid.index[missing_label]].copy()
    excluded[REASON_CODE] = "missing_label"
    excluded[REASON] = f"{spec.label.column} is missing"
    excluded[SOURCE_ROW] = excluded.index.astype("int64")
    excluded = as_text(excluded).reset_index(drop=True)
    quarantine = as_text(outcome.rejected)
    rows = prepared_rows(accepted, spec)

    rows_in = len(raw)
    check_accounting(rows_in, len(rows), len(quarantine), len(excluded))
    quarantined_by_reason = reason_counts(quarantine)
    excluded_by_reason = reason_counts(excluded)
    with publishing(settings) as staging:
        rows.to_parquet(staging / f"{ROWS}.parquet", index=False)
        quarantine.to_parquet(staging / "quarantine.parquet", index=False)
        excluded.to_parquet(staging / "excluded.parquet", index=False)
        report = {
            "task": spec.name,
            "task_file": str(task.file),
            "source": spec.data.source,
            "snapshot": snapshot.id,
            "rows_in": rows_in,
            "rows_accepted": len(rows),
            "rows_quarantined": len(quarantine),
            "rows_excluded": len(excluded),
            "quarantined_by_reason": quarantined_by_reason,
            "excluded_by_reason": excluded_by_reason,
            "label": {"rule": spec.label.rule, "positive_rate": _rate(rows[LABEL])},
        }
        write_tabular_quality_report(report, rows, quarantine, spec, staging)
        write_manifest(staging, snapshot.id, snapshot.manifest_uri)
    final = settings.data_dir / PREPARED
    return PreparedData(
        rows_in=rows_in,
        rows_accepted=len(rows),
        rows_quarantined=len(quarantine),
        rows_excluded=len(excluded),
        quarantined_by_reason=quarantined_by_reason,
        excluded_by_reason=excluded_by_reason,
        snapshot=snapshot.id,
        snapshot_manifest=snapshot.manifest_uri,
        directory=final,
        quality_report=final / "quality.html",
    )


def _rate(label: pd.Series) -> float | None:
    return round(float(label.mean()), 5) if len(label) else None


def prepared_rows_path(settings: Settings) -> Path:
    """The prepared table of the last data run (raises if there is none)."""
    return load_prepared(settings, (ROWS,))[ROWS]
