"""The flight transformer: request validation, and served input = training row (Feast)."""

from __future__ import annotations

import pytest

from e2eai.errors import InvalidInferenceRequest
from e2eai.serving.requests import columns_of, requests_frame
from e2eai.tasks.flights.schema import REQUEST_FIELDS

FLIGHT = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N14228",
    "scheduled_departure": "2013-01-01T05:15:00-05:00",
    "distance": 1400.0,
}


def test_valid_flights_become_a_typed_frame():
    frame = requests_frame(REQUEST_FIELDS, columns_of([FLIGHT, {**FLIGHT, "flight": 2}]), 10)
    assert list(frame["flight"]) == [1545, 2]
    assert str(frame["scheduled_departure"].dt.tz) == "UTC"
    assert frame["scheduled_departure"].iloc[0].hour == 10  # 05:15 EST = 10:15 UTC


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"flight": 1.5}, "flight", "whole numbers"),
        ({"flight": 0}, "flight", "outside"),
        ({"distance": "far"}, "distance", "expected a number"),
        ({"scheduled_departure": "yesterday"}, "scheduled_departure", "ISO 8601"),
        ({"scheduled_departure": 1357016100}, "scheduled_departure", "ISO 8601"),
        ({"carrier": "UNITED"}, "carrier", "longer than 3"),
        ({"tailnum": None}, "tailnum", "required"),
        ({"gate": "B12"}, "gate", "unknown field"),
    ],
)
def test_bad_flights_are_refused_naming_the_field(change, field, fragment):
    with pytest.raises(InvalidInferenceRequest) as info:
        requests_frame(REQUEST_FIELDS, columns_of([{**FLIGHT, **change}]), 10)
    assert info.value.field == field and fragment in str(info.value)


def test_missing_field_and_row_limit():
    partial = {k: v for k, v in FLIGHT.items() if k != "dest"}
    with pytest.raises(InvalidInferenceRequest) as info:
        requests_frame(REQUEST_FIELDS, columns_of([partial]), 10)
    assert info.value.field == "dest"
    with pytest.raises(InvalidInferenceRequest) as info:
        requests_frame(REQUEST_FIELDS, columns_of([FLIGHT] * 3), 2)
    assert info.value.status == 413


def test_enricher_refuses_a_feature_repo_that_cannot_serve(tmp_path):
    """Checked when the server starts (before it reports ready), not on the first request."""
    from conftest import copy_feature_repo

    from e2eai.config import Settings
    from e2eai.features.store import FeatureStoreError
    from e2eai.serving.enricher import Enricher
    from e2eai.tasks import load_task

    with pytest.raises(FeatureStoreError, match=r"no feature_store\.yaml"):
        settings = Settings(home=tmp_path, features={"repo": tmp_path / "nowhere"})
        Enricher(settings, load_task(settings))
    repo = copy_feature_repo(tmp_path / "feature_repo")  # definitions, never applied
    with pytest.raises(FeatureStoreError, match="features apply"):
        settings = Settings(home=tmp_path, features={"repo": repo})
        Enricher(settings, load_task(settings))
