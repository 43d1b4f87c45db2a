"""Local schedule features: the cached per-(zone, hour) offsets agree with pandas' tz_convert,
for one row at a time (online serving) and for many rows at once (training sets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2eai.tasks.flights.calendar import local_wall_clock, schedule_columns
from e2eai.tasks.flights.model_input import departure_time_zones

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Phoenix",  # no DST
    "Pacific/Honolulu",
    "Australia/Lord_Howe",  # half-hour DST shift at a half hour UTC
    "Asia/Kathmandu",  # +05:45
    "Europe/London",
)


def _instants(seed: int = 3) -> np.ndarray:
    """Random minutes of 2013 plus every minute around the New York and Lord Howe shifts."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2013-01-01", tz="UTC").value
    random = start + rng.integers(0, 365 * 24 * 60, size=3000) * 60_000_000_000
    edges = [
        pd.date_range(t, periods=180, freq="min", tz="UTC").asi8
        for t in ("2013-03-10 05:30", "2013-11-03 04:30", "2013-04-06 14:00", "2013-10-05 14:30")
    ]
    return np.concatenate([random, *edges])


def _pandas_local(instants: np.ndarray, zones: list[str]) -> np.ndarray:
    out = np.empty(len(instants), dtype=np.int64)
    for i, (t, zone) in enumerate(zip(instants, zones, strict=True)):
        out[i] = pd.Timestamp(int(t), tz="UTC").tz_convert(zone).tz_localize(None).value
    return out


def test_local_wall_clock_matches_pandas_in_bulk_and_row_by_row() -> None:
    instants = _instants()
    zones = [ZONES[i % len(ZONES)] for i in range(len(instants))]
    expected = _pandas_local(instants, zones)
    np.testing.assert_array_equal(local_wall_clock(instants, zones), expected)
    for i in range(0, len(instants), 37):
        assert local_wall_clock(instants[i : i + 1], zones[i : i + 1])[0] == expected[i]


def test_half_hour_shift_inside_an_utc_hour_is_exact() -> None:
    # Lord Howe's DST starts at 02:00 local (+10:30) = 15:30 UTC on 6 October 2013, when the
    # clock jumps half an hour to 02:30 (+11:00): a shift in the middle of a UTC hour.
    instants = pd.to_datetime(["2013-10-05 15:29", "2013-10-05 15:30"], utc=True).asi8
    local = local_wall_clock(instants, ["Australia/Lord_Howe"] * 2).view("datetime64[ns]")
    assert [str(t) for t in local.astype("datetime64[m]")] == [
        "2013-10-06T01:59",
        "2013-10-06T02:30",
    ]


def test_schedule_columns_match_pandas_accessors() -> None:
    instants = _instants(seed=5)
    zones = [ZONES[i % 3] for i in range(len(instants))]
    columns = schedule_columns(instants, zones)
    local = pd.Series(pd.to_datetime(_pandas_local(instants, zones)))
    assert columns["dep_hour"].tolist() == local.dt.hour.astype("float32").tolist()
    assert columns["day_of_week"].tolist() == local.dt.dayofweek.astype("float32").tolist()
    assert columns["month"].tolist() == local.dt.month.astype("float32").tolist()
    assert all(c.dtype == np.float32 for c in columns.values())


def test_unknown_zone_or_missing_instant_gives_nan() -> None:
    nat = np.iinfo(np.int64).min
    instants = np.array([pd.Timestamp("2013-07-04 15:00", tz="UTC").value, nat, 0])
    columns = schedule_columns(instants, ["America/New_York", "America/New_York", None])
    assert columns["dep_hour"][0] == 11.0 and columns["days_to_holiday"][0] == 0.0
    for values in columns.values():
        assert np.isnan(values[1:]).all()


@pytest.mark.parametrize(
    ("origins", "zones"),
    [
        (["EWR", "JFK", "LGA"], ["America/New_York"] * 3),
        (["ORD", "EWR", None, "ZZZ"], ["America/Chicago", "America/New_York", None, None]),
    ],
)
def test_departure_time_zones(origins, zones) -> None:
    assert departure_time_zones(origins).tolist() == zones
