"""Row-level validation of a task file's table with pandera: types, nulls, ranges, categories.

Two passes, because a value that cannot be coerced cannot be range-checked: first every
declared column is coerced to its kind (a failure is ``wrong_type``; a null where none is
allowed is ``missing_value``, ``missing_key`` or ``missing_timestamp``), then the typed rows
are checked against the declared ranges (``out_of_range``, ``not_finite``), categories
(``unknown_category``) and label values (``unknown_label``). Last, a key that appears twice
(twice at the same timestamp, for timed tasks) is ``duplicate_key`` from its second row on.
Every rejected row keeps its original values and gets the first reason code plus a reason
naming each offending column and value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.pandas import Check, Column, DataFrameSchema

from e2eai.data.prepare import REASON, REASON_CODE, SOURCE_ROW
from e2eai.tasks.task_file import ColumnSpec, TaskFileSpec

UTC_TIMESTAMP = pd.DatetimeTZDtype("ns", "UTC")


@dataclass(frozen=True)
class ValidationOutcome:
    valid: pd.DataFrame
    """Typed rows that passed every check (index: source row)."""
    rejected: pd.DataFrame
    """Original rows as text + reason_code + reason + source_row."""


def _not_finite(series: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(series.to_numpy(dtype=float)), index=series.index)


def _in_range(lo: float | None, hi: float | None) -> Callable[[pd.Series], pd.Series]:
    def check(series: pd.Series) -> pd.Series:
        inside = pd.Series(True, index=series.index)
        if lo is not None:
            inside &= series >= lo
        if hi is not None:
            inside &= series <= hi
        return inside

    return check


def _type_schema(spec: TaskFileSpec) -> DataFrameSchema:
    columns: dict[str, Column] = {
        spec.key_column: Column(str, nullable=False, coerce=True),
        spec.label.column: Column(
            float if spec.label.threshold is not None else str, nullable=True, coerce=True
        ),
    }
    if spec.timestamp:
        columns[spec.timestamp] = Column(UTC_TIMESTAMP, nullable=False, coerce=True)
    for column in spec.columns:
        dtype = float if column.kind == "numeric" else str
        columns[column.name] = Column(dtype, nullable=column.nullable, coerce=True)
    return DataFrameSchema(columns, strict=False)


def _value_checks(column: ColumnSpec) -> list[Check]:
    if column.kind == "numeric":
        checks = [Check(_not_finite, name="not_finite")]
        if column.minimum is not None or column.maximum is not None:
            checks.append(Check(_in_range(column.minimum, column.maximum), name="out_of_range"))
        return checks
    if column.categories is None:
        return []
    known = frozenset(column.categories)
    return [Check(lambda s: s.isin(known), name="unknown_category")]


def _value_schema(spec: TaskFileSpec) -> DataFrameSchema:
    columns = {c.name: Column(None, _value_checks(c), nullable=True) for c in spec.columns}
    label = spec.label
    if label.threshold is None and label.negative is not None:
        allowed = frozenset((*(label.positive or ()), *label.negative))
        columns[label.column] = Column(
            None, Check(lambda s: s.isin(allowed), name="unknown_label"), nullable=True
        )
    return DataFrameSchema(columns, strict=False)


class _Describer:
    """Reason text per failing (column, code, value): names the column and the value."""

    def __init__(self, spec: TaskFileSpec) -> None:
        self.spec = spec
        self.columns = {c.name: c for c in spec.columns}

    def code(self, column: str, check: str) -> str:
        name = check.split("(", 1)[0]
        if name in {"coerce_dtype", "dtype"}:
            return "wrong_type"
        if name == "not_nullable":
            if column == self.spec.key_column:
                return "missing_key"
            if column == self.spec.timestamp:
                return "missing_timestamp"
            return "missing_value"
        return name

    def expected_type(self, column: str) -> str:
        if column == self.spec.timestamp:
            return "a timestamp"
        if column == self.spec.label.column:
            return "a number" if self.spec.label.threshold is not None else "text"
        spec = self.columns.get(column)
        return "a number" if spec is not None and spec.kind == "numeric" else "text"

    def reason(self, column: str, code: str, value: object) -> str:
        shown = f"{column}={value!r}"
        if code == "wrong_type":
            return f"{shown} is not {self.expected_type(column)}"
        if code.startswith("missing_"):
            return f"{column} is missing"
        if code == "out_of_range":
            spec = self.columns[column]
            lo = "-inf" if spec.minimum is None else f"{spec.minimum:g}"
            hi = "inf" if spec.maximum is None else f"{spec.maximum:g}"
            return f"{shown} is outside [{lo}, {hi}]"
        if code == "not_finite":
            return f"{shown} is not a finite number"
        if code == "unknown_category":
            known = self.columns[column].categories or ()
            listed = ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
            return f"{shown} is not a known category ({listed})"
        if code == "unknown_label":
            label = self.spec.label
            return (
                f"{shown} is neither positive {list(label.positive or ())} nor negative "
                f"{list(label.negative or ())}"
            )
        return f"{shown} fails {code}"


def _reasons(errors: pa.errors.SchemaErrors, describe: _Describer) -> pd.DataFrame:
    """One row per failing source row: its first reason code and every reason joined."""
    cases = errors.failure_cases
    cases = cases[cases["index"].notna()]
    if cases.empty:  # a failure pandera could not pin to rows: a bug in our checks
        raise RuntimeError(f"validation failed without row indices:\n{errors.failure_cases}")
    records = []
    for column, check, value, index in cases[
        ["column", "check", "failure_case", "index"]
    ].itertuples(index=False):
        code = describe.code(str(column), str(check))
        records.append((int(index), code, describe.reason(str(column), code, value)))
    found = pd.DataFrame(records, columns=["index", REASON_CODE, REASON]).drop_duplicates()
    grouped = found.groupby("index", sort=True)
    return pd.DataFrame(
        {REASON_CODE: grouped[REASON_CODE].first(), REASON: grouped[REASON].agg("; ".join)}
    )


def _split(
    frame: pd.DataFrame, schema: DataFrameSchema, describe: _Describer
) -> tuple[pd.DataFrame, pd.DataFrame]:
    empty = pd.DataFrame(columns=[REASON_CODE, REASON])
    try:
        return schema.validate(frame, lazy=True), empty
    except pa.errors.SchemaErrors as errors:
        reasons = _reasons(errors, describe)
        good = frame.drop(index=reasons.index)
        return schema.validate(good, lazy=False), reasons


def _duplicates(valid: pd.DataFrame, spec: TaskFileSpec) -> pd.DataFrame:
    """Rows whose key (and timestamp, for timed tasks) an earlier row already has."""
    keys = [valid[spec.key_column], *([valid[spec.timestamp]] if spec.timestamp else [])]
    rows = pd.Series(valid.index, index=valid.index)
    first = rows.groupby(keys, sort=False).transform("first")
    repeated = first != rows
    at = " at the same timestamp" if spec.timestamp else ""
    text = [
        f"{spec.key_column}={key!r} repeats source row {row}{at}"
        for key, row in zip(valid.loc[repeated, spec.key_column], first[repeated], strict=True)
    ]
    return pd.DataFrame({REASON_CODE: "duplicate_key", REASON: text}, index=valid.index[repeated])


def validate_rows(raw: pd.DataFrame, spec: TaskFileSpec) -> ValidationOutcome:
    """Split the raw table (index: source row) into typed valid rows and rejected rows."""
    describe = _Describer(spec)
    typed, type_reasons = _split(raw, _type_schema(spec), describe)
    valid, value_reasons = _split(typed, _value_schema(spec), describe)
    duplicate_reasons = _duplicates(valid, spec)
    valid = valid.drop(index=duplicate_reasons.index)
    reasons = pd.concat([type_reasons, value_reasons, duplicate_reasons]).sort_index()
    rejected = raw.loc[reasons.index].astype("string")
    rejected[REASON_CODE] = reasons[REASON_CODE].astype("string")
    rejected[REASON] = reasons[REASON].astype("string")
    rejected[SOURCE_ROW] = reasons.index.astype("int64")
    return ValidationOutcome(valid=valid, rejected=rejected.reset_index(drop=True))
