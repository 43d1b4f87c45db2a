"""The model's input rows, built by one function for training and for serving.

Training calls it on flights joined point-in-time with Feast's offline store; the serving
transformer calls it on live requests joined with Feast's online store. Same code, so the
served input equals the training row for the same flight and timestamp.
"""

from __future__ import annotations

import pandas as pd

from e2eai.data.cleaning import airport_time_zones
from e2eai.features.calendar import schedule_features
from e2eai.schema import STATS_ENTITIES, model_features, stats_feature_names

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
    frame = pd.concat(
        [requests, features.drop(columns=requests.columns, errors="ignore"), calendar], axis=1
    )
    for feature in model_features(windows_hours):
        if feature.source == "feature_view" and feature.name not in frame:
            frame[feature.name] = float("nan")
    plane_year = pd.to_numeric(frame["plane_year"], errors="coerce")
    frame["plane_age"] = departure.dt.year.astype("float32") - plane_year
    for entity in STATS_ENTITIES:
        for window in windows_hours:
            count, rate = stats_feature_names(entity, window)
            frame[count] = frame[count].fillna(0.0)
            frame[rate] = frame[rate].fillna(rate_prior)

    out = pd.DataFrame(index=requests.index)
    for feature in model_features(windows_hours):
        column = frame[feature.name]
        if feature.kind == "numeric":
            out[feature.name] = pd.to_numeric(column, errors="coerce").astype("float32")
        else:
            out[feature.name] = column.astype(object).where(column.notna(), None)
    return out
