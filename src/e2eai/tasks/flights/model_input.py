"""The model's input rows, built by one function for training and for serving.

Training calls it on flights joined point-in-time with Feast's offline store; the serving
transformer calls it on live requests joined with Feast's online store. Same code, so the
served input equals the training row for the same flight and timestamp.

The work is column-wise on numpy arrays (:func:`model_input_columns`): DataFrames, dicts of
lists and dicts of arrays are all accepted, so a year of flights and one online request take
the same path, without the per-call cost of pandas on one-row frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from e2eai.tasks.flights.calendar import SCHEDULE_COLUMNS, schedule_columns
from e2eai.tasks.flights.cleaning import airport_time_zones
from e2eai.tasks.flights.rotation import rotation_inputs
from e2eai.tasks.flights.schema import (
    ROTATION_FEATURES,
    ROTATION_STATE,
    model_features,
    stats_defaults,
)

SCHEDULED_DEPARTURE = "scheduled_departure"

Columns: TypeAlias = Mapping[str, Any] | pd.DataFrame
"""Named, aligned columns: a DataFrame, or a mapping of name → list / numpy array / Series."""

_Step = tuple[str, Literal["numeric", "categorical"], str, float | None]
_ROTATION = frozenset(f.name for f in ROTATION_FEATURES)


@lru_cache(maxsize=16)
def _plan(windows_hours: tuple[int, ...], rate_prior: float) -> tuple[_Step, ...]:
    """(name, kind, where it comes from, default when missing) per model feature, in order."""
    defaults = stats_defaults(windows_hours, rate_prior)
    steps: list[_Step] = []
    for feature in model_features(windows_hours):
        origin = (
            "request"
            if feature.source == "request"
            else "calendar"
            if feature.name in SCHEDULE_COLUMNS
            else "plane_age"
            if feature.name == "plane_age"
            else "rotation"
            if feature.name in _ROTATION
            else "features"
        )
        steps.append((feature.name, feature.kind, origin, defaults.get(feature.name)))
    return tuple(steps)


@lru_cache(maxsize=1024)
def _airport_zone(code: str) -> str | None:
    zone = airport_time_zones(pd.Series([code], dtype=object)).iloc[0]
    return zone if isinstance(zone, str) else None


def departure_time_zones(origins: Any) -> np.ndarray:
    """IANA time zone of each departure airport (None when unknown), looked up once per code."""
    codes, uniques = pd.factorize(np.asarray(origins, dtype=object))
    table = np.array([_airport_zone(str(code)) for code in uniques] + [None], dtype=object)
    return table[codes]  # code -1 (missing origin) picks the trailing None


def utc_nanoseconds(values: Any) -> np.ndarray:
    """Timestamps as int64 UTC nanoseconds (numpy's NaT for missing); naive ones are UTC."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return values.astype("datetime64[ns]").view(np.int64)
    if isinstance(values, pd.Series) and (
        isinstance(values.dtype, pd.DatetimeTZDtype) or values.dtype.kind == "M"
    ):
        # tz-aware values are stored as UTC: this is the instant, not the wall clock.
        return values.to_numpy(dtype="datetime64[ns]").view(np.int64)
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    parsed = pd.to_datetime(series, utc=True)
    return parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _float32(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series):
        if not pd.api.types.is_numeric_dtype(values.dtype):
            values = pd.to_numeric(values, errors="coerce")
        return values.to_numpy(dtype=np.float32, na_value=np.nan)
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(np.float32)
    try:
        return np.asarray(values, dtype=np.float32)  # None → NaN
    except (TypeError, ValueError):
        coerced = pd.to_numeric(pd.Series(array, dtype=object), errors="coerce")
        return coerced.to_numpy(dtype=np.float32, na_value=np.nan)


def _strings(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series):
        out = values.to_numpy(dtype=object, copy=True)
    else:
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
    out[pd.isna(out)] = None
    return out


def _column(source: Columns, name: str, rows: int, what: str) -> Any:
    values = source[name]
    if len(values) != rows:
        raise ValueError(f"{what} column {name!r} has {len(values)} rows, expected {rows}")
    return values


def model_input_columns(
    requests: Columns,
    features: Columns,
    windows_hours: tuple[int, ...],
    rate_prior: float,
) -> dict[str, np.ndarray]:
    """Model input columns (``schema.model_features`` order): float32 or object arrays.

    ``requests`` carries the request fields (``scheduled_departure`` as UTC timestamps, or
    int64 UTC nanoseconds as ``datetime64``); ``features`` carries feature-view values for
    the same rows (missing columns or values mean no value in the store). Trailing
    statistics missing from the store (no flight within the TTL) mean no flights: count 0
    and the prior rate.
    """
    departure = utc_nanoseconds(requests[SCHEDULED_DEPARTURE])
    rows = len(departure)
    calendar = schedule_columns(
        departure, departure_time_zones(_column(requests, "origin", rows, "request"))
    )
    columns: dict[str, np.ndarray] = {}
    rotation: dict[str, np.ndarray] | None = None
    for name, kind, origin, default in _plan(tuple(windows_hours), float(rate_prior)):
        if origin == "calendar":
            columns[name] = calendar[name]
            continue
        if origin == "rotation":
            if rotation is None:  # the rotation inputs come from one derivation
                rotation = rotation_inputs(departure, _present(features, rows))
            columns[name] = rotation[name]
            continue
        if origin == "plane_age":
            columns[name] = _utc_year(departure) - _feature_or_nan(features, "plane_year", rows)
            continue
        if origin == "request":
            values: Any = _column(requests, name, rows, "request")
        elif name in features:
            values = _column(features, name, rows, "feature")
        else:
            values = [None] * rows
        if kind == "numeric":
            array = _float32(values)
            if default is not None:
                # No trailing stats in the store (no flight within the TTL) = no flights.
                array = np.where(np.isnan(array), np.float32(default), array)
            columns[name] = array.astype(np.float32, copy=False)
        else:
            columns[name] = _strings(values)
    return columns


def _present(features: Columns, rows: int) -> dict[str, Any]:
    """The aircraft-rotation fields among ``features`` (absent ones: the store had none)."""
    return {
        s.name: _column(features, s.name, rows, "feature")
        for s in ROTATION_STATE
        if s.name in features
    }


def _feature_or_nan(features: Columns, name: str, rows: int) -> np.ndarray:
    if name in features:
        return _float32(_column(features, name, rows, "feature"))
    return np.full(rows, np.nan, dtype=np.float32)


def _utc_year(utc_ns: np.ndarray) -> np.ndarray:
    years = utc_ns.view("datetime64[ns]").astype("datetime64[Y]")
    out = (years.astype(np.int64) + 1970).astype(np.float32)
    out[np.isnat(years)] = np.nan
    return out


def build_model_input(
    requests: pd.DataFrame,
    features: pd.DataFrame,
    windows_hours: tuple[int, ...],
    rate_prior: float,
) -> pd.DataFrame:
    """:func:`model_input_columns` as a DataFrame on ``requests``' index (training sets)."""
    if not requests.index.equals(features.index):
        raise ValueError("requests and features must be aligned on the same index")
    columns = model_input_columns(requests, features, windows_hours, rate_prior)
    return pd.DataFrame(columns, index=requests.index)
