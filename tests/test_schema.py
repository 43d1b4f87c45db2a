"""The one schema agrees with itself: names, kinds, views and request fields line up."""

from __future__ import annotations

import pytest

from e2eai.tasks.flights import schema


def test_model_features_are_unique_and_typed() -> None:
    features = schema.model_features()
    names = [f.name for f in features]
    assert len(names) == len(set(names))
    assert set(schema.numeric_features()) | set(schema.categorical_features()) == set(names)
    assert {f.v2_datatype for f in features} == {"FP32", "BYTES"}
    for feature in features:
        if feature.minimum is not None and feature.maximum is not None:
            assert feature.minimum < feature.maximum, feature.name


def test_every_feature_view_input_belongs_to_a_declared_view() -> None:
    views = {v.name for v in schema.FEATURE_VIEWS}
    refs = schema.feature_refs()
    assert refs, "the feature service would be empty"
    assert {ref.split(":")[0] for ref in refs} == views
    for view in views:
        entity = schema.feature_view(view).entity
        assert schema.entity(entity).join_key


@pytest.mark.parametrize("windows", [(24,), (6, 24, 168)])
def test_trailing_stats_follow_the_configured_windows(windows: tuple[int, ...]) -> None:
    names = {f.name for f in schema.model_features(windows)}
    for entity in schema.STATS_ENTITIES:
        for window in windows:
            count, rate = schema.stats_feature_names(entity, window)
            assert {count, rate} <= names
    assert "route_flights_12h" not in names


def test_unknown_names_are_rejected() -> None:
    with pytest.raises(KeyError, match="unknown feature view"):
        schema.view_features("no_such_view")
    with pytest.raises(KeyError, match="unknown entity"):
        schema.entity("gate")
