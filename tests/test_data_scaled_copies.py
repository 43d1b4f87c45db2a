"""Scaled copies of the flight data (bench/bench_scale.py): later years, every join intact."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from e2eai.config import ArtifactSettings, Settings
from e2eai.errors import DataSourceError
from e2eai.tasks.flights import FlightTask
from e2eai.tasks.flights.scaled_copies import LOCAL_ZONE, shifted_year, write_scaled_source
from e2eai.tasks.flights.sources import RawTables, read_raw_tables, source_files


def _weather_coverage(raw: RawTables) -> float:
    """Share of flights with a weather row at their origin and hour."""
    keys = raw.weather[["origin", "time_hour"]].drop_duplicates()
    joined = raw.flights.merge(keys, on=["origin", "time_hour"], how="left", indicator=True)
    return float((joined["_merge"] == "both").mean())


def _local(time_hour: pd.Series) -> pd.Series:
    return pd.to_datetime(time_hour, utc=True).dt.tz_convert(LOCAL_ZONE).dt.tz_localize(None)


def test_a_shifted_copy_moves_dates_by_whole_calendar_years_and_keeps_every_join(
    raw_flight_tables: RawTables,
) -> None:
    base = raw_flight_tables
    later = shifted_year(base, 2)

    assert len(later.flights) == len(base.flights)
    assert set(later.flights["year"]) == {"2015"}
    for column in ("month", "day", "sched_dep_time", "dep_delay", "carrier", "flight", "tailnum"):
        pd.testing.assert_series_equal(later.flights[column], base.flights[column])
    # time_hour is the same local New York hour two calendar years on (a spring-forward hour
    # that does not exist in 2015 moves to the next: none of 2013's flights is scheduled then).
    moved = _local(base.flights["time_hour"]) + pd.DateOffset(years=2)
    assert (_local(later.flights["time_hour"]) == moved).mean() > 0.9999
    # The weekday is not kept: 1 January 2013 was a Tuesday, 1 January 2015 a Thursday.
    assert pd.Timestamp("2015-01-01").day_name() == "Thursday"

    # flights ↔ weather: every flight that met a weather row in 2013 meets one in 2015.
    assert set(later.weather["year"]) == {"2015"}
    assert _weather_coverage(later) >= _weather_coverage(base) > 0.99
    assert not later.weather.duplicated(["origin", "time_hour"]).any()
    # flights ↔ planes: the same tail numbers, the same (undated) plane table.
    assert later.planes is base.planes
    assert set(later.flights["tailnum"].dropna()) == set(base.flights["tailnum"].dropna())
    assert shifted_year(base, 0) is base


def test_a_scaled_source_folder_is_read_as_one_source(tmp_path: Path) -> None:
    written = write_scaled_source(tmp_path / "2x", copies=2)
    raw = read_raw_tables(str(written.directory), ArtifactSettings())

    assert (written.first_year, written.last_year) == (2013, 2014)
    assert len(raw.flights) == written.flights == 2 * 336_776
    assert raw.flights["year"].value_counts().to_dict() == {"2013": 336_776, "2014": 336_776}
    assert set(raw.weather["year"]) == {"2013", "2014"}
    assert not raw.weather.duplicated(["origin", "time_hour"]).any()
    assert len(raw.planes) == 3322
    # No two flights share an id across the copies: the id holds the date.
    ids = raw.flights[["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]]
    assert ids.duplicated().sum() == 2 * ids[raw.flights["year"] == "2013"].duplicated().sum()

    # The pipeline's fingerprint names the folder's own tables.
    settings = Settings(data={"source": str(written.directory)})
    sources = FlightTask.from_settings(settings).data_sources(settings)
    assert sources["flights"] == str(written.directory / "flights.parquet")
    assert sources["weather"] == str(written.directory / "weather.parquet")


def test_a_source_folder_without_its_own_weather_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "flights-only"
    folder.mkdir()
    (folder / "flights.csv").write_text("year\n2013\n")
    with pytest.raises(DataSourceError, match="no weather table in the folder") as info:
        source_files(str(folder))
    assert info.value.source == str(folder)
