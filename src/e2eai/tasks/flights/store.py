"""The flight task's Feast side: training sets, online enrichment, the materialize window."""

from __future__ import annotations

import functools
from datetime import date

import numpy as np
import pandas as pd

from e2eai.config import Settings
from e2eai.features.store import (
    FeatureStoreError,
    as_list,
    historical_features,
    online_store_check,
    online_values,
    repo_dir,
    utc_day,
)
from e2eai.tasks.flights.feature_tables import (
    PLANES_VALID_FROM,
    flights_as_requests,
    flights_table_path,
)
from e2eai.tasks.flights.model_input import Columns, build_model_input, model_input_columns
from e2eai.tasks.flights.schema import (
    EVENT_TIMESTAMP,
    FEATURE_SERVICE,
    FLIGHT_ID,
    LABEL,
    feature_refs,
)

JOIN_KEYS: tuple[str, ...] = ("origin", "tailnum", "carrier", "route")


def entity_frame(settings: Settings, start: date, end: date) -> pd.DataFrame:
    """Flights scheduled in ``[start, end]`` (UTC days) from the feature step's table."""
    path = flights_table_path(settings)
    if not path.is_file():
        raise FeatureStoreError(f"{path}: no flight table; run `e2eai data prepare` first")
    flights = pd.read_parquet(path)
    ts = flights[EVENT_TIMESTAMP]
    window = flights[(ts >= utc_day(start)) & (ts <= utc_day(end, end_of_day=True))]
    return window.reset_index(drop=True)


def training_set(settings: Settings, start: date, end: date) -> pd.DataFrame:
    """Point-in-time correct training rows for flights scheduled in ``[start, end]``.

    Feast joins each flight, at its scheduled departure, with the latest feature values
    stamped at or before it; ``build_model_input`` then derives the model's columns exactly
    as the serving transformer does.
    """
    flights = entity_frame(settings, start, end)
    if flights.empty:
        raise FeatureStoreError(f"no flights scheduled between {start} and {end}")
    entity_df = flights[[FLIGHT_ID, EVENT_TIMESTAMP, *JOIN_KEYS]]
    joined = historical_features(
        settings.features.repo,
        entity_df,
        FEATURE_SERVICE,
        chunk_rows=settings.features.retrieval_chunk_rows,
    )
    # Feast does not keep the entity order: re-align on the flight id.
    joined = joined.set_index(FLIGHT_ID).loc[flights[FLIGHT_ID]].reset_index()
    joined.index = flights.index
    inputs = build_model_input(
        flights_as_requests(flights),
        joined.drop(columns=[EVENT_TIMESTAMP, *JOIN_KEYS]),
        settings.features.windows_hours,
        settings.features.rate_prior,
    )
    # carrier and origin are both join keys and model inputs: they come from ``inputs``.
    keys = flights[[FLIGHT_ID, EVENT_TIMESTAMP, "tailnum", "route"]]
    out = pd.concat([keys, inputs, flights[[LABEL, "arr_delay"]]], axis=1)
    return out.sort_values([EVENT_TIMESTAMP, FLIGHT_ID]).reset_index(drop=True)


def replay_traffic(settings: Settings, start: date, end: date) -> pd.DataFrame:
    """Flights scheduled in ``[start, end]`` as requests, with their outcome and its time.

    A flight's label is known once it has landed (``arrived_at``); the request carries
    only what is known when it is made (``REQUEST_FIELDS``)."""
    flights = entity_frame(settings, start, end)
    requests = flights_as_requests(flights)
    out = pd.concat(
        [
            flights[[FLIGHT_ID]],
            requests,
            pd.DataFrame(
                {
                    "request_time": flights[EVENT_TIMESTAMP],
                    "label": flights[LABEL].astype("int8"),
                    "label_time": flights["arrived_at"],
                }
            ),
        ],
        axis=1,
    )
    return out.sort_values(["request_time", FLIGHT_ID], kind="stable").reset_index(drop=True)


@functools.lru_cache(maxsize=16)
def _online_refs(windows_hours: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(feature_refs(windows_hours))


def online_feature_values(settings: Settings, requests: Columns) -> dict[str, list]:
    """Online feature values (name → one value per request, None when the store has none).

    ``requests`` is a DataFrame or a mapping of request field → values; the rows are looked
    up in one ``get_online_features`` call and returned in the same order.
    """
    origins = as_list(requests["origin"])
    dests = as_list(requests["dest"])
    entities = {
        "origin": origins,
        "tailnum": as_list(requests["tailnum"]),
        "carrier": as_list(requests["carrier"]),
        "route": [f"{origin}-{dest}" for origin, dest in zip(origins, dests, strict=True)],
    }
    refs = _online_refs(tuple(settings.features.windows_hours))
    return online_values(repo_dir(settings.features.repo), refs, entities)


def online_features(settings: Settings, requests: pd.DataFrame) -> pd.DataFrame:
    """Online feature values for flight requests, aligned with ``requests``' index."""
    return pd.DataFrame(online_feature_values(settings, requests), index=requests.index)


def online_model_columns(settings: Settings, requests: Columns) -> dict[str, np.ndarray]:
    """Model input columns for live requests: online features + the training-time derivation.

    What the serving transformer feeds to the model; no DataFrame on the way (see
    ``e2eai.tasks.flights.model_input``).
    """
    return model_input_columns(
        requests,
        online_feature_values(settings, requests),
        settings.features.windows_hours,
        settings.features.rate_prior,
    )


def warm_online_store(settings: Settings) -> None:
    """Open the serving store and look up one placeholder flight, before traffic arrives.

    The first lookup imports Feast, loads the registry and opens SQLite (seconds): a server
    does it before it reports ready, not on its first request.
    """
    placeholder = {
        "carrier": ["--"],
        "flight": [1],
        "origin": ["---"],
        "dest": ["---"],
        "tailnum": ["-"],
        "scheduled_departure": np.array(["2013-01-01T00:00"], dtype="datetime64[ns]"),
        "distance": [1.0],
    }
    with online_store_check(settings.features.repo):
        online_model_columns(settings, placeholder)


def online_model_input(settings: Settings, requests: pd.DataFrame) -> pd.DataFrame:
    """Model input for live requests as a DataFrame on ``requests``' index."""
    return pd.DataFrame(online_model_columns(settings, requests), index=requests.index)


def default_materialize_window(settings: Settings) -> tuple[date, date]:
    """From the static plane attributes' stamp to the end of the data window."""
    return PLANES_VALID_FROM.date(), settings.data.end
