"""Cleaning validated tables: rule exclusions, de-duplication, missing values, outliers,
and the timestamps every later stage relies on.

The missing-value policy is one table per source (``*_MISSING_POLICY``), so that the quality
report can state it and a reader can change it in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from e2eai.config import DataSettings
from e2eai.data.prepare import REASON, REASON_CODE, SOURCE_ROW
from e2eai.tasks.flights.schema import EVENT_TIMESTAMP, FLIGHT_ID, LABEL, WEATHER_FEATURES

FLIGHT_MISSING_POLICY: dict[str, str] = {
    "carrier, flight, origin, dest, date, scheduled times, distance": "quarantine (missing key)",
    "tailnum": "quarantine when the flight operated; allowed on cancelled flights",
    "dep_time, dep_delay": "missing ⇒ cancelled: excluded by rule",
    "arr_time, arr_delay, air_time": "missing after departure ⇒ diverted: excluded by rule",
}
WEATHER_MISSING_POLICY: dict[str, str] = {
    "wind_gust": "missing ⇒ 0 (no gust reported)",
    "temp, dewp, humid, pressure, wind_speed, visib": (
        "interpolated in time per origin across gaps up to data.weather_gap_fill_hours; "
        "longer gaps stay missing (the model imputes)"
    ),
    "wind_dir": "stays missing (calm or variable wind): the model imputes",
    "out-of-range values": "set to missing, then treated as above",
}
PLANE_MISSING_POLICY: dict[str, str] = {
    "year": "stays missing (the model imputes plane age)",
}

_INTERPOLATED = ("temp", "dewp", "humid", "pressure", "wind_speed", "visib")


@dataclass(frozen=True)
class CleanFlights:
    flights: pd.DataFrame  # operated, unique, with timestamps and label
    excluded: pd.DataFrame  # cancelled / diverted, with reason
    duplicates: pd.DataFrame  # quarantined duplicates, with reason


@dataclass(frozen=True)
class CleanWeather:
    weather: pd.DataFrame
    outliers_nulled: dict[str, int]
    values_filled: dict[str, int]
    duplicates_dropped: int


def local_to_utc(dates: pd.DataFrame, hhmm: pd.Series, tz: pd.Series) -> pd.Series:
    """Combine year/month/day and an ``HHMM`` clock time in per-row time zones into UTC.

    ``2400`` is midnight at the end of the day. Clock times that do not exist (spring DST
    gap) shift forward; ambiguous ones (autumn) resolve to standard time.
    """
    minutes = (hhmm // 100) * 60 + hhmm % 100
    naive = pd.to_datetime(
        {"year": dates["year"], "month": dates["month"], "day": dates["day"]}
    ) + pd.to_timedelta(minutes, unit="min")
    out = pd.Series(pd.NaT, index=hhmm.index, dtype="datetime64[ns, UTC]")
    for zone, idx in tz.groupby(tz).groups.items():
        local = naive.loc[idx].dt.tz_localize(zone, ambiguous=False, nonexistent="shift_forward")
        out.loc[idx] = local.dt.tz_convert("UTC")
    return out


@lru_cache(maxsize=1)
def _iata_time_zones() -> pd.Series:
    import airportsdata

    zones = {code: info["tz"] for code, info in airportsdata.load("IATA").items()}
    return pd.Series(zones, dtype=object)


def airport_time_zones(codes: pd.Series) -> pd.Series:
    """IANA time zone of each airport code (airportsdata, IATA)."""
    # Cached as a Series: parsing airportsdata's CSV costs ~0.5 s and turning the dict into a
    # lookup table each call ~5 ms, and serving calls this once per request.
    return codes.map(_iata_time_zones())


def add_flight_times(flights: pd.DataFrame, settings: DataSettings) -> pd.DataFrame:
    """Scheduled departure (UTC), actual arrival (UTC), route, id and label columns."""
    out = flights.copy()
    dates = out[["year", "month", "day"]].astype(int)
    out[EVENT_TIMESTAMP] = local_to_utc(
        dates, out["sched_dep_time"].astype(int), airport_time_zones(out["origin"])
    )
    departed = out[EVENT_TIMESTAMP] + pd.to_timedelta(out["dep_delay"], unit="min")
    arrival = local_to_utc(
        dates, out["arr_time"].fillna(0).astype(int), airport_time_zones(out["dest"])
    )
    # arr_time is a local clock reading on an unknown day: it is the first such reading
    # at or after the actual departure.
    behind = (departed - arrival).dt.total_seconds()
    days = np.ceil(behind.clip(lower=0) / 86400.0)
    out["arrived_at"] = arrival + pd.to_timedelta(days, unit="D")
    out.loc[out["arr_time"].isna(), "arrived_at"] = pd.NaT
    out["departed_at"] = departed
    out["route"] = out["origin"] + "-" + out["dest"]
    out[FLIGHT_ID] = (
        dates["year"].astype(str)
        + dates["month"].astype(str).str.zfill(2)
        + dates["day"].astype(str).str.zfill(2)
        + "-" + out["carrier"] + "-" + out["flight"].astype(int).astype(str)
        + "-" + out["origin"]
    )  # fmt: skip
    out[LABEL] = (out["arr_delay"] >= settings.delay_threshold_minutes).astype("int8")
    return out


def clean_flights(valid: pd.DataFrame, settings: DataSettings) -> CleanFlights:
    """Exclude cancelled and diverted flights, quarantine duplicates, add times and label."""
    cancelled = valid["dep_time"].isna() | valid["dep_delay"].isna()
    diverted = ~cancelled & (valid["arr_delay"].isna() | valid["arr_time"].isna())
    excluded = valid[cancelled | diverted].copy()
    excluded[REASON_CODE] = np.where(cancelled[cancelled | diverted], "cancelled", "diverted")
    excluded[REASON] = excluded[REASON_CODE]

    operated = add_flight_times(valid[~cancelled & ~diverted], settings)
    first = ~operated.duplicated(FLIGHT_ID, keep="first")
    duplicates = operated[~first].copy()
    originals = operated[first].reset_index().set_index(FLIGHT_ID)["index"]
    duplicates[REASON_CODE] = "duplicate"
    duplicates[REASON] = (
        "duplicate: flight_id=" + duplicates[FLIGHT_ID]
        + " first seen at source row " + duplicates[FLIGHT_ID].map(originals).astype(str)
    )  # fmt: skip
    duplicates[SOURCE_ROW] = duplicates.index.astype("int64")
    flights = operated[first].sort_values([EVENT_TIMESTAMP, FLIGHT_ID]).reset_index(drop=True)
    return CleanFlights(flights, excluded, duplicates)


def clean_weather(raw: pd.DataFrame, settings: DataSettings) -> CleanWeather:
    """Typed hourly weather per origin: unique hours, outliers nulled, short gaps filled."""
    weather = raw.copy()
    numeric = [f.name for f in WEATHER_FEATURES]
    weather[numeric] = weather[numeric].apply(pd.to_numeric, errors="coerce")
    weather["time_hour"] = pd.to_datetime(weather["time_hour"], utc=True, errors="coerce")
    weather = weather.dropna(subset=["origin", "time_hour"])
    before = len(weather)
    weather = weather.drop_duplicates(["origin", "time_hour"], keep="first")
    duplicates_dropped = before - len(weather)

    outliers: dict[str, int] = {}
    for feature in WEATHER_FEATURES:
        column = weather[feature.name]
        bad = column.notna() & ~column.between(feature.minimum, feature.maximum)
        outliers[feature.name] = int(bad.sum())
        weather.loc[bad, feature.name] = np.nan

    filled: dict[str, int] = {"wind_gust": int(weather["wind_gust"].isna().sum())}
    weather["wind_gust"] = weather["wind_gust"].fillna(0.0)
    weather = weather.sort_values(["origin", "time_hour"]).reset_index(drop=True)
    limit = settings.weather_gap_fill_hours
    for name in _INTERPOLATED:
        missing_before = int(weather[name].isna().sum())
        weather[name] = weather.groupby("origin", group_keys=False)[name].apply(
            lambda s: s.interpolate(limit=limit, limit_area="inside")
        )
        filled[name] = missing_before - int(weather[name].isna().sum())
    weather = weather.rename(columns={"time_hour": EVENT_TIMESTAMP})
    weather[numeric] = weather[numeric].astype("float32")
    return CleanWeather(
        weather[["origin", EVENT_TIMESTAMP, *numeric]], outliers, filled, duplicates_dropped
    )


def clean_planes(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per tail number with typed attributes."""
    planes = raw.drop_duplicates("tailnum", keep="first").copy()
    planes["plane_year"] = pd.to_numeric(planes["year"], errors="coerce").astype("float32")
    planes["seats"] = pd.to_numeric(planes["seats"], errors="coerce").astype("float32")
    planes["engines"] = pd.to_numeric(planes["engines"], errors="coerce").astype("float32")
    planes["engine_type"] = planes["engine"].astype(str)
    return planes[["tailnum", "plane_year", "seats", "engines", "engine_type"]].reset_index(
        drop=True
    )
