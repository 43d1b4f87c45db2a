"""Online vs offline parity: the served model input equals the training row.

The session run materialized the online store up to the end of the window's last day
(23:59:59 UTC). Feature rows are stamped on the hour, so for flights departing in the last
hour of that day the latest row at or before their departure (offline) is the latest row
materialized (online): the two paths must agree value for value.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from e2eai.tasks.flights.feature_tables import flights_as_requests
from e2eai.tasks.flights.schema import EVENT_TIMESTAMP, FLIGHT_ID, model_features
from e2eai.tasks.flights.store import entity_frame, online_features, online_model_input


@pytest.fixture(scope="module")
def last_hour(flight_window_run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(requests, training rows) of the flights departing in the last materialized hour."""
    settings = flight_window_run.settings
    day = settings.data.end
    end = pd.Timestamp(day + timedelta(days=1), tz="UTC")
    flights = entity_frame(settings, day, day)
    flights = flights[flights[EVENT_TIMESTAMP] >= end - pd.Timedelta(hours=1)]
    flights = flights.set_index(FLIGHT_ID)
    training = flight_window_run.training.set_index(FLIGHT_ID).loc[flights.index]
    return flights_as_requests(flights), training


def test_there_are_enough_flights_in_the_last_hour(last_hour) -> None:
    requests, _ = last_hour
    assert len(requests) >= 15
    assert requests["origin"].nunique() == 3


def test_online_model_input_equals_the_training_rows(flight_window_run, last_hour) -> None:
    requests, training = last_hour
    online = online_model_input(flight_window_run.settings, requests)
    names = [f.name for f in model_features(flight_window_run.settings.features.windows_hours)]
    assert list(online.columns) == names
    for feature in model_features(flight_window_run.settings.features.windows_hours):
        served, trained = online[feature.name], training[feature.name]
        if feature.kind == "numeric":
            assert served.dtype == trained.dtype == np.float32, feature.name
            np.testing.assert_array_equal(served.to_numpy(), trained.to_numpy(), feature.name)
        else:
            assert served.tolist() == trained.tolist(), feature.name


def test_parity_covers_real_values_not_defaults(flight_window_run, last_hour) -> None:
    """The equality above is meaningful: features came from the store, not from fill-ins."""
    requests, training = last_hour
    raw = online_features(flight_window_run.settings, requests)
    assert raw["temp"].notna().all()  # weather served for every flight
    assert raw["seats"].notna().mean() > 0.5  # most tails are in the FAA registry
    for column in ("route_flights_24h", "carrier_flights_168h", "origin_flights_24h"):
        assert (raw[column] > 0).mean() > 0.8, column
    assert training["route_delay_rate_168h"].nunique() > 5


def test_fast_value_reading_equals_feasts_own_conversion(flight_window_run, last_hour) -> None:
    """The serving path reads numeric values straight from Feast's response proto; on the real
    store that is value for value what ``OnlineResponse.to_dict()`` gives (missing included)."""
    from e2eai.features.store import _response_values, serving_store
    from e2eai.tasks.flights.store import _online_refs, repo_dir

    requests, _ = last_hour
    settings = flight_window_run.settings
    entities = {
        "origin": requests["origin"].tolist(),
        "tailnum": [*requests["tailnum"].tolist()[:-1], "NO-SUCH-TAIL"],
        "carrier": requests["carrier"].tolist(),
        "route": [f"{o}-{d}" for o, d in zip(requests["origin"], requests["dest"], strict=True)],
    }
    refs = _online_refs(tuple(settings.features.windows_hours))
    response = serving_store(repo_dir(settings.features.repo)).get_online_features(
        features=list(refs), entity_rows=entities
    )
    fast, feast = _response_values(response), response.to_dict()
    assert fast == feast
    assert any(v is None for column in fast.values() for v in column)  # a missing tail's
    assert {type(v) for column in fast.values() for v in column} >= {float, str}
