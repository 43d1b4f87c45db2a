"""No leakage on real flights: trailing stats recounted by hand from the prepared flights.

Definition (``e2eai.tasks.flights.trailing``): for a flight scheduled to depart at ``T``, let
``H = floor_hour(T)``; its ``<entity>_flights_<w>h`` counts the entity's flights that landed
in ``[H - w, H)`` and its rate is ``(delayed + prior * weight) / (flights + weight)``.
The values under test come from Feast's point-in-time join (``training_set``).
"""

from __future__ import annotations

import pandas as pd
import pytest

from e2eai.tasks.flights.schema import (
    EVENT_TIMESTAMP,
    FLIGHT_ID,
    LABEL,
    STATS_ENTITIES,
    stats_feature_names,
)

SAMPLE = 50


@pytest.fixture(scope="module")
def landed(flight_window_run) -> pd.DataFrame:
    """Every accepted flight of the window, as the data stage wrote it."""
    return pd.read_parquet(flight_window_run.prepared.flights_path)


@pytest.fixture(scope="module")
def sample(flight_window_run) -> pd.DataFrame:
    """50 training rows from day 3 on (so that the trailing windows hold real flights)."""
    training = flight_window_run.training
    later = training[training[EVENT_TIMESTAMP] >= pd.Timestamp("2013-01-03", tz="UTC")]
    return later.sample(SAMPLE, random_state=13)


def _recount(landed: pd.DataFrame, entity: str, key: str, hour: pd.Timestamp, window: int):
    mine = landed[landed[entity] == key]
    inside = mine[
        (mine["arrived_at"] >= hour - pd.Timedelta(hours=window)) & (mine["arrived_at"] < hour)
    ]
    return len(inside), int(inside[LABEL].sum())


def test_trailing_stats_match_a_recount_from_flights_landed_before_the_hour(
    flight_window_run, landed: pd.DataFrame, sample: pd.DataFrame
) -> None:
    features = flight_window_run.settings.features
    checked = nonzero = 0
    for _, row in sample.iterrows():
        hour = row[EVENT_TIMESTAMP].floor("h")
        for entity in STATS_ENTITIES:
            for window in features.windows_hours:
                flights, delayed = _recount(landed, entity, row[entity], hour, window)
                count, rate = stats_feature_names(entity, window)
                where = f"{row[FLIGHT_ID]} {count}"
                assert row[count] == flights, where
                expected = (delayed + features.rate_prior * features.rate_prior_weight) / (
                    flights + features.rate_prior_weight
                )
                assert row[rate] == pytest.approx(expected, abs=1e-6), where
                checked += 1
                nonzero += flights > 0
    assert checked == SAMPLE * len(STATS_ENTITIES) * len(features.windows_hours)
    # The comparison means something only if the windows really hold flights.
    assert nonzero >= 0.9 * checked


def test_the_sample_spans_routes_carriers_and_origins(sample: pd.DataFrame) -> None:
    assert sample["route"].nunique() >= 20
    assert sample["carrier"].nunique() >= 5
    assert sample["origin"].nunique() == 3


def test_no_flight_lands_before_its_own_departure_hour(
    flight_window_run, landed: pd.DataFrame
) -> None:
    """So by the rule above a flight's own arrival (and label) never feeds its features."""
    training = flight_window_run.training.merge(
        landed[[FLIGHT_ID, "arrived_at"]], on=FLIGHT_ID, how="left", validate="one_to_one"
    )
    assert training["arrived_at"].notna().all()
    assert (training["arrived_at"] >= training[EVENT_TIMESTAMP].dt.floor("h")).all()


def test_own_arrival_is_counted_only_by_later_flights(
    flight_window_run, landed: pd.DataFrame, sample: pd.DataFrame
) -> None:
    """Recount with the flight's own arrival removed: nothing changes for the flight itself,
    while some later flight on the same route does count it."""
    training = flight_window_run.training.set_index(FLIGHT_ID)
    later_flights = 0
    for flight_id, row in sample.set_index(FLIGHT_ID).head(10).iterrows():
        own = landed[landed[FLIGHT_ID] == flight_id].iloc[0]
        hour = row[EVENT_TIMESTAMP].floor("h")
        others = landed[landed[FLIGHT_ID] != flight_id]
        assert _recount(others, "route", row["route"], hour, 24)[0] == row["route_flights_24h"]
        after = training[
            (training["route"] == row["route"])
            & (training[EVENT_TIMESTAMP].dt.floor("h") > own["arrived_at"])
            & (training[EVENT_TIMESTAMP].dt.floor("h") <= own["arrived_at"] + pd.Timedelta("24h"))
        ]
        for later_id, later in after.iterrows():
            later_hour = later[EVENT_TIMESTAMP].floor("h")
            with_own = _recount(landed, "route", row["route"], later_hour, 24)[0]
            without = _recount(others, "route", row["route"], later_hour, 24)[0]
            assert with_own == without + 1 == later["route_flights_24h"], later_id
            later_flights += 1
    assert later_flights >= 5


def test_a_flight_never_counts_towards_its_own_departure_congestion(
    flight_window_run, landed: pd.DataFrame
) -> None:
    from e2eai.tasks.flights.schema import DEPARTURE_WINDOWS_HOURS, departure_feature_names

    training = flight_window_run.training.merge(
        landed[[FLIGHT_ID, "departed_at"]], on=FLIGHT_ID, validate="one_to_one"
    )
    hour = training[EVENT_TIMESTAMP].dt.floor("h")
    left_early = training[training["departed_at"] < hour]
    assert len(left_early) > 0  # the case exists in real data
    for _, row in left_early.head(20).iterrows():
        h = row[EVENT_TIMESTAMP].floor("h")
        others = landed[(landed["origin"] == row["origin"]) & (landed[FLIGHT_ID] != row[FLIGHT_ID])]
        # A departure counts from the later of its actual and its scheduled departure.
        counted_at = others["departed_at"].where(
            others["departed_at"] > others[EVENT_TIMESTAMP], others[EVENT_TIMESTAMP]
        )
        for window in DEPARTURE_WINDOWS_HOURS:
            count, _ = departure_feature_names(window)
            left = others[(counted_at >= h - pd.Timedelta(hours=window)) & (counted_at < h)]
            assert row[count] == len(left), f"{row[FLIGHT_ID]} {count}"
