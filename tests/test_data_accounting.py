"""Row accounting of the data stage on real flights with one injected bad row of each kind.

The slice goes through the real ingestion path (a CSV file read by ``read_raw_tables``), so
bad cells arrive exactly as they would from a user's file: empty cells are missing values,
'abc' is text where a number belongs.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from conftest import flight_settings, flights_between

from e2eai.data.prepare import PreparedData
from e2eai.tasks.flights.prepare import prepare_flights
from e2eai.tasks.flights.schema import FLIGHT_ID
from e2eai.tasks.flights.sources import RawTables

START, END = date(2013, 1, 1), date(2013, 1, 2)

# name → (column, bad value, expected reason code, text the reason must contain)
CELL_INJECTIONS: dict[str, tuple[str, str | None, str, str]] = {
    "wrong_type": ("dep_delay", "abc", "wrong_type", "dep_delay='abc'"),
    "wrong_type_timestamp": ("time_hour", "yesterday", "wrong_type", "time_hour"),
    "distance_out_of_range": ("distance", "99999", "out_of_range", "distance=99999"),
    "month_out_of_range": ("month", "13", "out_of_range", "month=13"),
    "delay_outlier": ("arr_delay", "2000", "out_of_range", "arr_delay=2000"),
    "carrier_missing": ("carrier", None, "missing_key", "carrier"),
    "sched_dep_missing": ("sched_dep_time", None, "missing_key", "sched_dep_time"),
    "tailnum_missing_on_operated_flight": ("tailnum", None, "missing_key", "tailnum"),
    "unknown_destination": ("dest", "XQZ", "unknown_airport", "dest='XQZ'"),
    "unknown_carrier": ("carrier", "Q9", "unknown_carrier", "carrier='Q9'"),
}


@pytest.fixture(scope="module")
def injected(
    raw_flight_tables: RawTables, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PreparedData, pd.DataFrame, dict[str, int]]:
    """Prepare a two-day real slice with bad rows, two out-of-window days and a duplicate.

    Returns the result, the raw slice as written to the CSV, and the source row of every
    injected bad row by name.
    """
    slice_ = flights_between(raw_flight_tables, START, date(2013, 1, 3)).flights.copy()
    operated = slice_.index[
        slice_["dep_time"].notna()
        & slice_["dep_delay"].notna()
        & slice_["arr_time"].notna()
        & slice_["arr_delay"].notna()
        & slice_["tailnum"].notna()
        & (slice_["day"] == "1")
    ]
    rows: dict[str, int] = {}
    for i, (name, (column, value, _, _)) in enumerate(CELL_INJECTIONS.items()):
        row = operated[10 * i]  # spread out, each a distinct operated flight
        slice_.loc[row, column] = value
        rows[name] = int(row)
    feb30 = int(operated[200])
    slice_.loc[feb30, ["month", "day"]] = ["2", "30"]
    rows["invalid_date"] = feb30
    copied = int(operated[300])
    slice_ = pd.concat([slice_, slice_.loc[[copied]]], ignore_index=True)
    rows["duplicate"] = len(slice_) - 1
    rows["duplicate_original"] = copied

    home = tmp_path_factory.mktemp("accounting")
    source = home / "flights.csv"
    slice_.to_csv(source, index=False)
    settings = flight_settings(home, START, END, source=str(source))
    return prepare_flights(settings), slice_, rows


def _expected_exclusions(raw: pd.DataFrame, bad_rows: set[int]) -> Counter[str]:
    """Cancelled / diverted / outside-window counts by the documented missing-value policy."""
    rest = raw.drop(index=list(bad_rows))
    day = pd.to_datetime({"year": rest["year"], "month": rest["month"], "day": rest["day"]})
    outside = (day.dt.date < START) | (day.dt.date > END)
    cancelled = ~outside & (rest["dep_time"].isna() | rest["dep_delay"].isna())
    diverted = ~outside & ~cancelled & (rest["arr_time"].isna() | rest["arr_delay"].isna())
    return Counter(
        {
            "outside_window": int(outside.sum()),
            "cancelled": int(cancelled.sum()),
            "diverted": int(diverted.sum()),
        }
    )


def test_every_row_is_accounted_for_exactly(injected) -> None:
    prepared, raw, rows = injected
    bad = {r for name, r in rows.items() if name != "duplicate_original"}
    excluded = _expected_exclusions(raw, bad)
    # The real slice has cancelled and diverted flights: the exclusions are exercised.
    assert excluded["cancelled"] > 0 and excluded["diverted"] > 0
    assert excluded["outside_window"] > 0

    assert prepared.rows_in == len(raw)
    assert prepared.rows_quarantined == len(bad)
    assert prepared.rows_excluded == sum(excluded.values())
    assert prepared.rows_accepted == len(raw) - len(bad) - sum(excluded.values())
    assert (
        prepared.rows_accepted + prepared.rows_quarantined + prepared.rows_excluded
        == prepared.rows_in
    )
    assert prepared.excluded_by_reason == dict(excluded)
    expected_codes = Counter(code for _, _, code, _ in CELL_INJECTIONS.values())
    expected_codes.update(["invalid_date", "duplicate"])
    assert prepared.quarantined_by_reason == dict(expected_codes)

    flights = pd.read_parquet(prepared.flights_path)
    assert len(flights) == prepared.rows_accepted
    assert flights[FLIGHT_ID].is_unique
    quarantine = pd.read_parquet(prepared.directory / "quarantine.parquet")
    excluded_rows = pd.read_parquet(prepared.directory / "excluded.parquet")
    assert len(quarantine) == prepared.rows_quarantined
    assert len(excluded_rows) == prepared.rows_excluded
    # Nothing counted twice: every set-aside row is one source row, in one place only.
    set_aside = pd.concat([quarantine["source_row"], excluded_rows["source_row"]])
    assert set_aside.is_unique
    assert set(quarantine["source_row"]) == bad
    assert Counter(excluded_rows["reason_code"]) == excluded


@pytest.mark.parametrize("name", [*CELL_INJECTIONS, "invalid_date"])
def test_bad_row_is_quarantined_with_a_reason_naming_the_column(injected, name: str) -> None:
    prepared, raw, rows = injected
    quarantine = pd.read_parquet(prepared.directory / "quarantine.parquet")
    row = quarantine[quarantine["source_row"] == rows[name]]
    assert len(row) == 1, f"{name}: source row {rows[name]} is not quarantined exactly once"
    code, text = (
        CELL_INJECTIONS[name][2:]
        if name in CELL_INJECTIONS
        else ("invalid_date", "year/month/day is not a calendar date")
    )
    assert row["reason_code"].iloc[0] == code
    assert text in row["reason"].iloc[0]
    # The quarantined row keeps what was read, bad value included.
    original = raw.loc[rows[name]]
    for column in ("carrier", "flight", "dep_delay", "distance", "month", "day"):
        kept = row[column].iloc[0]
        assert (pd.isna(kept) and pd.isna(original[column])) or kept == original[column]


def test_duplicate_is_quarantined_and_the_first_copy_accepted(injected) -> None:
    prepared, raw, rows = injected
    quarantine = pd.read_parquet(prepared.directory / "quarantine.parquet")
    duplicate = quarantine[quarantine["reason_code"] == "duplicate"]
    assert duplicate["source_row"].tolist() == [rows["duplicate"]]
    reason = duplicate["reason"].iloc[0]
    assert f"first seen at source row {rows['duplicate_original']}" in reason
    original = raw.loc[rows["duplicate_original"]]
    flight_id = (
        f"{original['year']}{int(original['month']):02d}{int(original['day']):02d}"
        f"-{original['carrier']}-{original['flight']}-{original['origin']}"
    )
    assert f"flight_id={flight_id}" in reason
    flights = pd.read_parquet(prepared.flights_path)
    assert (flights[FLIGHT_ID] == flight_id).sum() == 1


def test_quality_report_states_the_same_accounting(injected) -> None:
    prepared, _, _ = injected
    report = json.loads((prepared.directory / "quality.json").read_text())
    for key in ("rows_in", "rows_accepted", "rows_quarantined", "rows_excluded"):
        assert report[key] == getattr(prepared, key)
    assert report["quarantined_by_reason"] == prepared.quarantined_by_reason
    assert report["excluded_by_reason"] == prepared.excluded_by_reason
    assert sum(m["flights"] for m in report["monthly"]) == prepared.rows_accepted
    html = Path(prepared.quality_report).read_text()
    assert "data:image/png;base64," in html and prepared.snapshot in html
