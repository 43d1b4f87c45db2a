"""Schema-derived request validation: every kind of bad input is refused, naming the field."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx_fixtures import feature_rows

from e2eai.config import Settings
from e2eai.errors import InvalidInferenceRequest
from e2eai.serving.validation import (
    Tensor,
    feed_from_instances,
    feed_from_tensors,
    model_input_specs,
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
