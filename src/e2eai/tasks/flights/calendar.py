"""Schedule features: local hour, weekday, month and distance to the nearest US holiday.

Computed column-wise on numpy arrays, so that one implementation serves a year of training
flights and the one-row requests of online serving alike: the per-call overhead of pandas
(a tz-aware Series per zone, ``.dt`` accessors, a DataFrame) was most of the online budget.
Time zones come from ``zoneinfo``; the UTC offset is looked up once per (zone, UTC hour) and
cached, and falls back to an exact per-row lookup in the rare hour that holds a transition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

_SECOND_NS = 1_000_000_000
_HOUR_NS = 3600 * _SECOND_NS
_DAY_NS = 24 * _HOUR_NS
_NAT = np.iinfo(np.int64).min  # numpy's NaT as int64
_MAX_ZONES = 1 << 16  # zone codes share an int64 key with the hour number

SCHEDULE_COLUMNS: tuple[str, ...] = ("dep_hour", "day_of_week", "month", "days_to_holiday")


@lru_cache(maxsize=8)
def _us_holidays(first_year: int, last_year: int) -> np.ndarray:
    import holidays

    days = holidays.country_holidays("US", years=range(first_year, last_year + 1))
    return np.array(sorted(days), dtype="datetime64[D]")


def _days_to_holiday(dates: np.ndarray) -> np.ndarray:
    """float32 days from each ``datetime64[D]`` date to the nearest holiday (NaN for NaT)."""
    out = np.full(len(dates), np.nan, dtype=np.float32)
    known = ~np.isnat(dates)
    if not known.any():
        return out
    days = dates[known]
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    table = _us_holidays(int(years.min()) - 1, int(years.max()) + 1)
    right = np.searchsorted(table, days).clip(1, len(table) - 1)
    before = np.abs((days - table[right - 1]).astype(np.int64))
    after = np.abs((table[right] - days).astype(np.int64))
    out[known] = np.minimum(before, after)
    return out


def days_to_nearest_holiday(local_dates: pd.Series) -> pd.Series:
    """Absolute days from each local calendar date to the nearest US federal holiday."""
    dates = local_dates.to_numpy(dtype="datetime64[D]")
    return pd.Series(_days_to_holiday(dates), index=local_dates.index)


@lru_cache(maxsize=65536)
def _offset_in_hour(zone: str, hour: int) -> int | None:
    """UTC offset (ns) of ``zone`` throughout UTC hour ``hour``; None if it changes within it."""
    tz = ZoneInfo(zone)
    start = datetime.fromtimestamp(hour * 3600, tz).utcoffset()
    end = datetime.fromtimestamp(hour * 3600 + 3599, tz).utcoffset()
    if start != end or start is None:
        return None  # a transition inside the hour (half-hour zones): resolve per row
    return int(start.total_seconds()) * _SECOND_NS


def _offset_at(zone: str, utc_ns: int) -> int:
    offset = datetime.fromtimestamp(utc_ns // _SECOND_NS, ZoneInfo(zone)).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return int(offset.total_seconds()) * _SECOND_NS


def local_wall_clock(utc_ns: np.ndarray, time_zones: Sequence[str | None]) -> np.ndarray:
    """Local wall-clock time (int64 ns, NaT where the zone or the instant is missing).

    ``utc_ns`` are int64 nanoseconds since the epoch (``datetime64[ns]`` viewed as int64,
    NaT allowed); ``time_zones`` are IANA names aligned with it. Offsets are looked up per
    distinct (zone, UTC hour), so a year of flights costs a few thousand lookups and one
    flight one (cached) lookup.
    """
    utc_ns = np.asarray(utc_ns, dtype=np.int64)
    zone_codes, zones = pd.factorize(np.asarray(time_zones, dtype=object))
    if len(zones) >= _MAX_ZONES:
        raise ValueError(f"{len(zones)} distinct time zones: more than {_MAX_ZONES - 1}")
    known = (zone_codes >= 0) & (utc_ns != _NAT)
    local = np.full(len(utc_ns), _NAT, dtype=np.int64)
    if not known.any():
        return local
    instants = utc_ns[known]
    codes = zone_codes[known].astype(np.int64)
    keys, inverse = np.unique((instants // _HOUR_NS) * _MAX_ZONES + codes, return_inverse=True)
    offsets = np.empty(len(keys), dtype=np.int64)
    per_row: list[int] = []
    for k, key in enumerate(keys.tolist()):
        hour, code = divmod(key, _MAX_ZONES)
        offset = _offset_in_hour(str(zones[code]), hour)
        if offset is None:
            per_row.append(k)
            offset = 0
        offsets[k] = offset
    row_offsets = offsets[inverse.reshape(-1)]
    for k in per_row:
        for i in np.flatnonzero(inverse.reshape(-1) == k).tolist():
            row_offsets[i] = _offset_at(str(zones[codes[i]]), int(instants[i]))
    local[known] = instants + row_offsets
    return local


def schedule_columns(utc_ns: np.ndarray, time_zones: Sequence[str | None]) -> dict[str, np.ndarray]:
    """``SCHEDULE_COLUMNS`` as float32 arrays, in the departure airport's local time."""
    local = local_wall_clock(utc_ns, time_zones)
    missing = local == _NAT
    days = np.floor_divide(local, _DAY_NS)
    hour = np.floor_divide(local, _HOUR_NS) % 24
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    dates = np.where(missing, _NAT, days).astype("datetime64[D]")
    month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    columns = {
        "dep_hour": hour.astype(np.float32),
        "day_of_week": weekday.astype(np.float32),
        "month": month.astype(np.float32),
    }
    if missing.any():
        for values in columns.values():
            values[missing] = np.nan
    columns["days_to_holiday"] = _days_to_holiday(dates)
    return columns


def schedule_features(scheduled_departure: pd.Series, time_zones: pd.Series) -> pd.DataFrame:
    """Hour, weekday, month and holiday distance in the departure airport's local time."""
    utc = pd.to_datetime(scheduled_departure, utc=True).to_numpy(dtype="datetime64[ns]")
    columns = schedule_columns(utc.view(np.int64), time_zones.to_numpy(dtype=object))
    return pd.DataFrame(columns, index=scheduled_departure.index)
