"""Schedule features: local hour, weekday, month and distance to the nearest US holiday."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd


@lru_cache(maxsize=8)
def _us_holidays(first_year: int, last_year: int) -> np.ndarray:
    import holidays

    days = holidays.country_holidays("US", years=range(first_year, last_year + 1))
    return np.array(sorted(days), dtype="datetime64[D]")


def days_to_nearest_holiday(local_dates: pd.Series) -> pd.Series:
    """Absolute days from each local calendar date to the nearest US federal holiday."""
    dates = local_dates.to_numpy(dtype="datetime64[D]")
    if len(dates) == 0:
        return pd.Series([], dtype="float32", index=local_dates.index)
    years = dates.astype("datetime64[Y]").astype(int) + 1970
    table = _us_holidays(int(years.min()) - 1, int(years.max()) + 1)
    right = np.searchsorted(table, dates).clip(1, len(table) - 1)
    before = np.abs((dates - table[right - 1]).astype(int))
    after = np.abs((table[right] - dates).astype(int))
    return pd.Series(np.minimum(before, after).astype("float32"), index=local_dates.index)


def schedule_features(scheduled_departure: pd.Series, time_zones: pd.Series) -> pd.DataFrame:
    """Hour, weekday, month and holiday distance in the departure airport's local time."""
    local_values = np.full(len(scheduled_departure), np.datetime64("NaT"), dtype="datetime64[ns]")
    # One conversion per zone over a mask: cheap for the one-row frames of online serving
    # as well as for a year of flights (a handful of zones).
    for zone in pd.unique(time_zones.dropna()):
        mask = (time_zones == zone).to_numpy()
        converted = scheduled_departure[mask].dt.tz_convert(zone).dt.tz_localize(None)
        local_values[mask] = converted.to_numpy(dtype="datetime64[ns]")
    local = pd.Series(local_values, index=scheduled_departure.index)
    return pd.DataFrame(
        {
            "dep_hour": local.dt.hour.astype("float32"),
            "day_of_week": local.dt.dayofweek.astype("float32"),
            "month": local.dt.month.astype("float32"),
            "days_to_holiday": days_to_nearest_holiday(local.dt.normalize()),
        },
        index=scheduled_departure.index,
    )
