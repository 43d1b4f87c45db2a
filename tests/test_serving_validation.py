"""Schema-derived request validation: every kind of bad input is refused, naming the field."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx_fixtures import feature_rows

from e2eai.config import Settings
from e2eai.errors import InvalidInferenceRequest
from e2eai.serving.validation import (
    Tensor,
    feed_from_instances,
    feed_from_tensors,
    model_input_specs,
    numeric_column,
    tensors_from_v2_inputs,
)
from e2eai.tasks.flights import FlightTask, schema

SPECS = model_input_specs(FlightTask.from_settings(Settings()))
IDX = {f.name: k for k, f in enumerate(schema.model_features())}


def _v2_inputs(rows: list[dict]) -> list[dict]:
    return [
        {
            "name": f.name,
            "datatype": f.v2_datatype,
            "shape": [len(rows), 1],
            "data": [r[f.name] for r in rows],
        }
        for f in schema.model_features()
    ]


def _feed(inputs: list[dict], max_rows: int = 100) -> dict[str, np.ndarray]:
    return feed_from_tensors(tensors_from_v2_inputs(inputs), SPECS, max_rows)


def test_specs_cover_every_model_feature_with_nullability_from_the_source():
    assert [s.name for s in SPECS] == [f.name for f in schema.model_features()]
    by_name = {s.name: s for s in SPECS}
    assert not by_name["distance"].nullable and not by_name["carrier"].nullable
    assert by_name["wind_gust"].nullable and by_name["engine_type"].nullable
    assert by_name["plane_age"].nullable  # derived from the plane feature view
    assert by_name["carrier"].max_length == 3


def test_valid_v2_request_becomes_an_ort_feed():
    rows = feature_rows(3)
    rows[1]["wind_gust"] = None
    rows[2]["engine_type"] = None
    feed = _feed(_v2_inputs(rows))
    assert feed["distance"].shape == (3, 1) and feed["distance"].dtype == np.float32
    assert math.isnan(feed["wind_gust"][1, 0])
    assert feed["engine_type"][2, 0] == ""
    assert feed["carrier"][0, 0] == rows[0]["carrier"]


def test_nested_data_and_flat_shape_are_both_accepted():
    rows = feature_rows(2)
    inputs = _v2_inputs(rows)
    inputs[3]["data"] = [[v] for v in inputs[3]["data"]]
    inputs[4]["shape"] = [2]
    feed = _feed(inputs)
    assert feed["distance"][:, 0].tolist() == pytest.approx([r["distance"] for r in rows])


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (lambda i: i.pop(5), "day_of_week", "missing input"),
        (lambda i: i.append({**i[0], "name": "colour"}), "colour", "unknown input"),
        (lambda i: i.append(dict(i[0])), "carrier", "appears twice"),
        (lambda i: i[3].update(data=["far"]), "distance", "expected a number"),
        (lambda i: i[3].update(data=[True]), "distance", "expected a number"),
        (lambda i: i[3].update(data=[None]), "distance", "required"),
        (lambda i: i[3].update(data=[math.nan]), "distance", "NaN"),
        (lambda i: i[IDX["wind_gust"]].update(data=[math.inf]), "wind_gust", "infinite"),
        (lambda i: i[3].update(data=[99999.0]), "distance", "outside [1, 5000]"),
        (lambda i: i[4].update(data=[-1.0]), "dep_hour", "outside"),
        (lambda i: i[0].update(data=[7]), "carrier", "expected a string"),
        (lambda i: i[0].update(data=[None]), "carrier", "required"),
        (lambda i: i[0].update(data=["ABCDEFG"]), "carrier", "longer than 3"),
        (lambda i: i[0].update(datatype="FP32"), "carrier", "not BYTES"),
        (lambda i: i[3].update(datatype="BYTES"), "distance", "not numeric"),
        (lambda i: i[3].update(shape=[1, 2]), "distance", "shape"),
        (lambda i: i[3].update(shape=[2, 1]), "distance", "other inputs have 1"),
        (lambda i: [t.update(shape=[2, 1]) for t in i], "carrier", "has 1 values"),
        (lambda i: i[3].pop("data"), "distance", "missing 'data'"),
        (lambda i: i[3].update(shape="1"), "distance", "'shape'"),
    ],
)
def test_bad_v2_inputs_are_refused_naming_the_field(mutate, field, fragment):
    inputs = _v2_inputs(feature_rows(1))
    mutate(inputs)
    with pytest.raises(InvalidInferenceRequest) as info:
        _feed(inputs)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert info.value.status == 400


def test_too_many_rows_is_413():
    with pytest.raises(InvalidInferenceRequest) as info:
        _feed(_v2_inputs(feature_rows(5)), max_rows=4)
    assert info.value.status == 413 and "limit of 4 rows" in str(info.value)


def test_binary_tensors_decode_like_json():
    rows = feature_rows(2)
    inputs = _v2_inputs(rows)
    raw = b""
    for item in inputs:
        if item["datatype"] == "FP32":
            chunk = np.asarray(item["data"], dtype="<f4").tobytes()
        else:
            chunk = b"".join(
                len(s.encode()).to_bytes(4, "little") + s.encode() for s in item["data"]
            )
        item["parameters"] = {"binary_data_size": len(chunk)}
        del item["data"]
        raw += chunk
    binary = feed_from_tensors(tensors_from_v2_inputs(inputs, memoryview(raw)), SPECS, 10)
    plain = _feed(_v2_inputs(rows))
    for name in plain:
        assert binary[name].tolist() == plain[name].tolist() or np.allclose(
            binary[name].astype(float), plain[name].astype(float), equal_nan=True
        )


def test_binary_size_mismatch_is_refused():
    inputs = _v2_inputs(feature_rows(1))
    inputs[3]["parameters"] = {"binary_data_size": 8}
    del inputs[3]["data"]
    with pytest.raises(InvalidInferenceRequest, match="distance"):
        tensors_from_v2_inputs(inputs, memoryview(b"\x00" * 4))
    with pytest.raises(InvalidInferenceRequest) as info:
        feed_from_tensors([Tensor("distance", "FP32", (1,), raw=b"\x00" * 3)], SPECS[3:4], 10)
    assert info.value.field == "distance"


def test_v1_instances_validate_the_same_way():
    rows = feature_rows(2)
    instances = [{f.name: r[f.name] for f in schema.model_features()} for r in rows]
    feed = feed_from_instances(instances, SPECS, 10)
    assert feed["month"].shape == (2, 1)
    instances[1]["surprise"] = 1
    with pytest.raises(InvalidInferenceRequest) as info:
        feed_from_instances(instances, SPECS, 10)
    assert info.value.field == "surprise" and "row 1" in str(info.value)
    with pytest.raises(InvalidInferenceRequest, match="instances"):
        feed_from_instances({"not": "a list"}, SPECS, 10)


# -- hostile values: always InvalidInferenceRequest naming the field, never another error ----


def _one_row_with(name: str, data: object) -> list[dict]:
    inputs = _v2_inputs(feature_rows(1))
    inputs[IDX[name]]["data"] = data
    return inputs


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("distance", [10**400], "digits"),
        ("distance", [-(10**400)], "digits"),
        ("route_flights_24h", [1e300], "FP32 range"),
        ("route_flights_24h", [10**39], "FP32 range"),
        ("distance", [[[250.0]]], "expected a number, got a list"),
        ("distance", [[250.0, 251.0]], "one value per row"),
        ("distance", [[]], "one value per row"),
        ("distance", [{}], "expected a number, got an object"),
        ("distance", [[250.0], 251.0], "one value per row"),
        ("distance", "250", "must be a list"),
        ("carrier", [[["UA"]]], "expected a string, got a list"),
        ("carrier", ["\ud800"], "surrogate"),
    ],
)
def test_hostile_values_are_refused_naming_the_input(name, data, fragment):
    with pytest.raises(InvalidInferenceRequest) as info:
        _feed(_one_row_with(name, data))
    assert info.value.field == name and info.value.status == 400
    assert fragment in str(info.value)


def test_a_list_nested_a_thousand_levels_is_refused_naming_the_input():
    deep: object = 250.0
    for _ in range(1000):
        deep = [deep]
    with pytest.raises(InvalidInferenceRequest) as info:
        _feed(_one_row_with("distance", [deep]))
    assert info.value.field == "distance"


def test_a_boolean_among_numbers_is_refused_in_any_row():
    rows = feature_rows(3)
    inputs = _v2_inputs(rows)
    inputs[IDX["distance"]]["data"][2] = True
    with pytest.raises(InvalidInferenceRequest, match="row 2: expected a number, got bool"):
        _feed(inputs)
    instances = [{f.name: r[f.name] for f in schema.model_features()} for r in rows]
    instances[1]["seats"] = False
    with pytest.raises(InvalidInferenceRequest) as info:
        feed_from_instances(instances, SPECS, 10)
    assert info.value.field == "seats" and "row 1" in str(info.value)


@pytest.mark.parametrize("value", [[100, 200], [], {}, "far", None])
def test_v1_values_that_are_not_numbers_name_field_and_row(value):
    instances = [{f.name: r[f.name] for f in schema.model_features()} for r in feature_rows(2)]
    instances[1]["distance"] = value
    with pytest.raises(InvalidInferenceRequest) as info:
        feed_from_instances(instances, SPECS, 10)
    assert info.value.field == "distance" and "row 1" in str(info.value)


def test_no_rows_and_too_many_rows_name_the_field():
    inputs = _v2_inputs(feature_rows(1))
    for item in inputs:
        item.update(shape=[0], data=[])
    with pytest.raises(InvalidInferenceRequest) as info:
        _feed(inputs)
    assert info.value.field == "carrier" and "no rows" in str(info.value)
    instances = [{f.name: r[f.name] for f in schema.model_features()} for r in feature_rows(3)]
    with pytest.raises(InvalidInferenceRequest) as info:
        feed_from_instances(instances, SPECS, 2)
    assert info.value.field == "instances" and info.value.status == 413


def test_made_up_names_are_cut_short_in_errors():
    inputs = _v2_inputs(feature_rows(1))
    inputs.append({**inputs[0], "name": "x" * 100_000})
    with pytest.raises(InvalidInferenceRequest) as info:
        _feed(inputs)
    assert len(str(info.value)) < 300 and info.value.field.startswith("xxx")


NUMBERS_OR_WORSE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.floats(width=32),
    st.text(max_size=5),
    st.lists(st.floats(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([s.name for s in SPECS if s.kind == "numeric"]),
    values=st.lists(NUMBERS_OR_WORSE, min_size=1, max_size=4),
)
def test_the_vectorised_check_agrees_with_the_column_check(name, values):
    """Whatever the values, the one-pass check of all inputs and the column-by-column check
    accept the same requests, with the same float32 values, and refuse the same ones."""
    rows = feature_rows(len(values))
    instances = [{f.name: r[f.name] for f in schema.model_features()} for r in rows]
    for row, value in zip(instances, values, strict=True):
        row[name] = value
    try:
        expected = numeric_column(SPECS[IDX[name]], values)
    except InvalidInferenceRequest as exc:
        with pytest.raises(InvalidInferenceRequest) as info:
            feed_from_instances(instances, SPECS, 10)
        assert info.value.field == name and str(info.value) == str(exc)
        return
    feed = feed_from_instances(instances, SPECS, 10)
    np.testing.assert_array_equal(feed[name][:, 0], expected)
    for other in SPECS:
        if other.kind == "numeric" and other.name != name:
            column = numeric_column(other, [r[other.name] for r in rows])
            np.testing.assert_array_equal(feed[other.name][:, 0], column)
