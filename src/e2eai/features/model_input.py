"""The model's input rows, built by one function for training and for serving.

Training calls it on flights joined point-in-time with Feast's offline store; the serving
transformer calls it on live requests joined with Feast's online store. Same code, so the
served input equals the training row for the same flight and timestamp.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from e2eai.data.cleaning import airport_time_zones
from e2eai.features.calendar import schedule_features
from e2eai.schema import model_features, stats_defaults

SCHEDULED_DEPARTURE = "scheduled_departure"


def build_model_input(
    requests: pd.DataFrame,
    features: pd.DataFrame,
    windows_hours: tuple[int, ...],
    rate_prior: float,
) -> pd.DataFrame:
    """Model input columns (``schema.model_features`` order) for aligned requests and features.

    ``requests`` carries the request fields (``scheduled_departure`` as UTC timestamps);
    ``features`` carries feature-view values for the same rows (missing ones may be NaN).
    Trailing statistics missing from the store (no flight within the TTL) mean no flights:
    count 0 and the prior rate.
    """
    if not requests.index.equals(features.index):
        raise ValueError("requests and features must be aligned on the same index")
    departure = pd.to_datetime(requests[SCHEDULED_DEPARTURE], utc=True)
    calendar = schedule_features(departure, airport_time_zones(requests["origin"]))
    missing = pd.Series(np.nan, index=requests.index, dtype="float32")
    defaults = stats_defaults(windows_hours, rate_prior)

    def numeric(column: pd.Series) -> np.ndarray:
        if pd.api.types.is_numeric_dtype(column.dtype):
            return column.to_numpy(dtype="float32", na_value=np.nan)
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype="float32", na_value=np.nan)

    # Columns are assembled in a dict and framed once: per-column inserts into a DataFrame
    # cost more than the arithmetic for the one-row frames of online serving.
    columns: dict[str, object] = {}
    for feature in model_features(windows_hours):
        name = feature.name
        if feature.source == "request":
            column = requests[name]
        elif name in calendar:
            column = calendar[name]
        elif name == "plane_age":
            plane_year = numeric(features["plane_year"]) if "plane_year" in features else missing
            columns[name] = departure.dt.year.to_numpy(dtype="float32") - plane_year
            continue
        else:
            column = features.get(name, missing)
        if feature.kind == "numeric":
            values = numeric(column)
            if name in defaults:
                # No trailing stats in the store (no flight within the TTL) = no flights.
                values = np.where(np.isnan(values), np.float32(defaults[name]), values)
            columns[name] = values.astype("float32", copy=False)
        else:
            values = column.to_numpy(dtype=object, copy=True)
            values[pd.isna(values)] = None
            columns[name] = values
    return pd.DataFrame(columns, index=requests.index)
