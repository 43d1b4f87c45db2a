"""One schema end to end: the Feast registry, the model input frame and the calendar features
agree with ``e2eai.tasks.flights.schema``."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from e2eai.tasks.flights import schema
from e2eai.tasks.flights.calendar import days_to_nearest_holiday, schedule_features
from e2eai.tasks.flights.model_input import SCHEDULED_DEPARTURE, build_model_input


@pytest.fixture(scope="module")
def registry(flight_window_run):
    """The applied Feast registry of the session run."""
    from e2eai.features.store import open_feature_store

    return open_feature_store(flight_window_run.settings.features.repo)


def test_feature_service_serves_exactly_the_schemas_feature_refs(registry) -> None:
    service = registry.get_feature_service(schema.FEATURE_SERVICE)
    served = [
        f"{projection.name}:{feature.name}"
        for projection in service.feature_view_projections
        for feature in projection.features
    ]
    assert len(served) == len(set(served))
    assert sorted(served) == sorted(schema.feature_refs())


def test_registered_views_match_the_schema(flight_window_run, registry) -> None:
    from feast.types import Float32, Int64, String

    assert flight_window_run.feature_views == sorted(v.name for v in schema.FEATURE_VIEWS)
    for spec in schema.FEATURE_VIEWS:
        view = registry.get_feature_view(spec.name)
        expected = [
            (f.name, Float32 if f.kind == "numeric" else String)
            for f in schema.view_features(spec.name)
        ]
        # Fields the task derives inputs from (the aircraft's last leg), in their own dtype.
        expected += [
            (s.name, Int64 if s.dtype == "int64" else Float32) for s in schema.view_state(spec.name)
        ]
        assert [(f.name, f.dtype) for f in view.features] == expected, spec.name
        assert (view.ttl or timedelta(0)) == spec.ttl, spec.name
        assert view.entities == [spec.entity], spec.name
        join_key = schema.entity(spec.entity).join_key
        assert [c.name for c in view.entity_columns] == [join_key], spec.name


def test_training_set_columns_are_the_model_features_in_order(flight_window_run) -> None:
    training = flight_window_run.training
    names = [f.name for f in schema.model_features()]
    keys = [schema.FLIGHT_ID, schema.EVENT_TIMESTAMP, "tailnum", "route"]
    assert list(training.columns) == [*keys, *names, schema.LABEL, "arr_delay"]
    for feature in schema.model_features():
        column = training[feature.name]
        if feature.kind == "numeric":
            assert column.dtype == np.float32, feature.name
        else:
            assert column.dtype == object, feature.name
            assert column.map(lambda v: v is None or isinstance(v, str)).all(), feature.name


def test_real_feature_values_lie_in_the_schemas_ranges(flight_window_run) -> None:
    training = flight_window_run.training
    assert len(training) == flight_window_run.prepared.rows_accepted - (
        # flights of the last local evening depart after midnight UTC: outside the UTC window
        (
            pd.read_parquet(flight_window_run.prepared.flights_path)[schema.EVENT_TIMESTAMP]
            >= pd.Timestamp(flight_window_run.settings.data.end + timedelta(days=1), tz="UTC")
        ).sum()
    )
    for feature in schema.model_features():
        if feature.kind != "numeric":
            continue
        values = training[feature.name].dropna()
        assert len(values) > 0, feature.name
        if feature.minimum is not None:
            assert values.min() >= feature.minimum, feature.name
        if feature.maximum is not None:
            assert values.max() <= feature.maximum, feature.name
    assert set(training[schema.LABEL].unique()) == {0, 1}


def test_build_model_input_fills_missing_stats_with_no_flights_and_the_prior() -> None:
    requests = pd.DataFrame(
        {
            "carrier": ["UA"],
            "flight": [1545],
            "origin": ["EWR"],
            "dest": ["IAH"],
            "tailnum": ["N14228"],
            SCHEDULED_DEPARTURE: [pd.Timestamp("2013-07-05 03:00", tz="UTC")],
            "distance": [1400.0],
        }
    )
    out = build_model_input(requests, pd.DataFrame(index=requests.index), (24, 168), 0.2)
    assert list(out.columns) == [f.name for f in schema.model_features()]
    row = out.iloc[0]
    # 03:00 UTC on 5 July is 23:00 EDT on Thursday 4 July, Independence Day, at Newark.
    assert (row["dep_hour"], row["day_of_week"], row["month"], row["days_to_holiday"]) == (
        23.0,
        3.0,
        7.0,
        0.0,
    )
    for entity in schema.STATS_ENTITIES:
        for window in (24, 168):
            count, rate = schema.stats_feature_names(entity, window)
            assert row[count] == 0.0
            assert row[rate] == np.float32(0.2)
    assert np.isnan(row["temp"]) and np.isnan(row["plane_age"]) and row["engine_type"] is None
    with pytest.raises(ValueError, match="aligned"):
        build_model_input(requests, pd.DataFrame(index=[7]), (24, 168), 0.2)


@pytest.mark.parametrize(
    ("day", "days"),
    [
        (date(2013, 7, 4), 0),  # Independence Day
        (date(2013, 7, 6), 2),
        (date(2013, 7, 1), 3),
        (date(2013, 11, 28), 0),  # Thanksgiving (4th Thursday)
        (date(2013, 11, 25), 3),
        (date(2013, 12, 28), 3),  # Christmas is 3 days back, New Year 4 ahead
        (date(2013, 12, 31), 1),  # New Year's Day 2014: across the year boundary
        (date(2013, 1, 2), 1),
        (date(2013, 8, 16), 17),  # mid-August: Labor Day is 2 September
    ],
)
def test_days_to_nearest_holiday(day: date, days: int) -> None:
    result = days_to_nearest_holiday(pd.Series([pd.Timestamp(day)]))
    assert result.dtype == np.float32
    assert result.iloc[0] == days


def test_schedule_features_use_the_departure_airports_local_time() -> None:
    departure = pd.Series(
        [pd.Timestamp("2013-03-10 06:59", tz="UTC"), pd.Timestamp("2013-03-10 07:00", tz="UTC")]
    )
    zones = pd.Series(["America/New_York", "America/New_York"])
    features = schedule_features(departure, zones)
    # DST starts at 02:00 local on 10 March 2013: 06:59 UTC is 01:59 EST, 07:00 UTC 03:00 EDT.
    assert features["dep_hour"].tolist() == [1.0, 3.0]
    assert features["day_of_week"].tolist() == [6.0, 6.0]  # Sunday
