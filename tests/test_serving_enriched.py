"""Feast-enriched serving end to end: flight request → online features → model → probability.

Real processes on loopback: a predictor ModelServer with in-process enrichment (``--enrich``),
and the separate transformer ModelServer in front of a plain predictor. Both read the Feast
online store of the session's real ten-day run (``flight_window_run``), materialized up to
the end of its last day. Feature rows are stamped on the hour, so for flights departing in
the last hour of that day the online values are the point-in-time values of the training set
(see tests/test_features_parity.py): the served input must equal the training row, and the
served probability must equal the ONNX model applied to that row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from onnx_fixtures import AIRPORTS, CARRIERS, DESTS, ENGINES, build_onnx_model

from e2eai.config import ServingSettings, Settings
from e2eai.serving.enricher import Enricher
from e2eai.serving.processes import (
    PredictorProcess,
    free_port,
    settings_env,
    start_predictor,
    stop_process,
    wait_until_ready,
)
from e2eai.serving.rollout import ModelSource
from e2eai.tasks import load_task
from e2eai.tasks.flights import schema
from e2eai.tasks.flights.feature_tables import flights_as_requests
from e2eai.tasks.flights.model_input import departure_time_zones
from e2eai.tasks.flights.store import entity_frame

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]
NAME = "flight-delay"
FEATURES = schema.model_features()
REQUEST_NAMES = [f.name for f in schema.REQUEST_FIELDS]


@pytest.fixture(scope="module")
def settings(flight_window_run, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The session run's settings, with a serving home of this module's own."""
    base = flight_window_run.settings
    return base.model_copy(
        update={
            "home": tmp_path_factory.mktemp("serving-home"),
            "serving": ServingSettings(model_name=NAME, max_batch_rows=500),
        }
    )


@pytest.fixture(scope="module")
def last_hour(flight_window_run) -> tuple[list[dict], pd.DataFrame]:
    """(flight requests as clients send them, training rows) of the last materialized hour."""
    settings = flight_window_run.settings
    day = settings.data.end
    end = pd.Timestamp(day + timedelta(days=1), tz="UTC")
    flights = entity_frame(settings, day, day)
    flights = flights[flights[schema.EVENT_TIMESTAMP] >= end - pd.Timedelta(hours=1)]
    flights = flights.set_index(schema.FLIGHT_ID)
    training = flight_window_run.training.set_index(schema.FLIGHT_ID).loc[flights.index]
    requests = flights_as_requests(flights)
    zones = departure_time_zones(requests["origin"])
    instances = []
    for (_, row), zone in zip(requests.iterrows(), zones, strict=True):
        # Clients send the local scheduled time with its offset, as a departure board shows it.
        local = row["scheduled_departure"].tz_convert(zone).isoformat()
        instances.append(
            {
                "carrier": row["carrier"],
                "flight": int(row["flight"]),
                "origin": row["origin"],
                "dest": row["dest"],
                "tailnum": row["tailnum"],
                "scheduled_departure": local,
                "distance": float(row["distance"]),
            }
        )
    return instances, training


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_onnx_model(tmp_path_factory.mktemp("model") / "model.onnx")


def _ort_feed(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The serving contract's ORT feed for model-input rows (missing category = "")."""
    feed = {}
    for f in FEATURES:
        column = rows[f.name]
        if f.kind == "numeric":
            feed[f.name] = column.to_numpy(dtype=np.float32).reshape(-1, 1)
        else:
            values = ["" if v is None else v for v in column.tolist()]
            feed[f.name] = np.array(values, dtype=object).reshape(-1, 1)
    return feed


def _onnx_probability(onnx_path: Path, rows: pd.DataFrame) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (probability,) = session.run(["probability"], _ort_feed(rows))
    return np.asarray(probability, dtype=np.float32).reshape(-1)


def _v2_flights(instances: list[dict]) -> dict:
    types = {"str": "BYTES", "datetime": "BYTES", "int": "INT64", "float": "FP32"}
    return {
        "id": "enriched-1",
        "inputs": [
            {
                "name": field.name,
                "datatype": types[field.type],
                "shape": [len(instances), 1],
                "data": [row[field.name] for row in instances],
            }
            for field in schema.REQUEST_FIELDS
        ],
    }


@pytest.fixture(scope="module")
def enriched_predictor(settings: Settings, onnx_path: Path) -> Iterator[PredictorProcess]:
    """``python -m e2eai.serving.server --enrich``: Feast lookup in the predictor process."""
    process = start_predictor(
        settings, ModelSource.from_path(onnx_path, "1"), slot="enriched", enrich=True
    )
    try:
        yield process
    finally:
        stop_process(process.pid, grace=5)


@pytest.fixture(scope="module")
def transformer_in_front(settings: Settings, onnx_path: Path) -> Iterator[int]:
    """``python -m e2eai.serving.transformer`` in front of a plain predictor; yields its port."""
    predictor = start_predictor(settings, ModelSource.from_path(onnx_path, "1"), slot="plain")
    port = free_port()
    log_path = settings.home / "transformer.log"
    env = {**os.environ, **settings_env(settings)}
    command = [
        sys.executable,
        "-m",
        "e2eai.serving.transformer",
        "--predictor-host",
        f"127.0.0.1:{predictor.http_port}",
        "--http-port",
        str(port),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/v2/health/ready", process.pid, 90, log_path)
        yield port
    finally:
        stop_process(process.pid, grace=5)
        stop_process(predictor.pid, grace=5)


def test_transformer_input_equals_the_training_rows(settings, last_hour) -> None:
    """The enricher's model input (what both servers feed ORT) is the training row."""
    instances, training = last_hour
    assert len(instances) >= 15 and training["origin"].nunique() == 3
    served = Enricher(settings, load_task(settings)).model_input(instances)
    assert list(served) == [f.name for f in FEATURES]
    for feature in FEATURES:
        trained = training[feature.name].to_numpy()
        if feature.kind == "numeric":
            assert served[feature.name].dtype == trained.dtype == np.float32, feature.name
            np.testing.assert_array_equal(served[feature.name], trained, feature.name)
        else:
            assert served[feature.name].tolist() == trained.tolist(), feature.name
    # Real values from the store, not fill-ins: weather and trailing stats are present.
    assert not np.isnan(served["temp"]).any()
    assert (served["route_flights_24h"] > 0).mean() > 0.8


def test_the_probability_depends_on_every_feature(onnx_path, last_hour) -> None:
    """Equal probabilities below prove equal inputs: changing any one feature changes them."""
    _, training = last_hour
    row = training.iloc[[0]]
    base = _onnx_probability(onnx_path, row)[0]
    alternatives = {"carrier": CARRIERS, "dest": DESTS, "engine_type": ENGINES, "origin": AIRPORTS}
    for feature in FEATURES:
        changed = row.copy()
        value = changed[feature.name].iloc[0]
        if feature.kind == "numeric":
            changed[feature.name] = np.float32(0.0 if np.isnan(value) else value + 1.0)
        else:
            changed[feature.name] = next(c for c in alternatives[feature.name] if c != value)
        assert _onnx_probability(onnx_path, changed)[0] != base, feature.name


def test_in_process_enrichment_serves_the_model_on_the_training_rows(
    enriched_predictor, onnx_path, last_hour
) -> None:
    instances, training = last_hour
    expected = _onnx_probability(onnx_path, training)
    with httpx.Client(base_url=f"http://127.0.0.1:{enriched_predictor.http_port}") as client:
        v2 = client.post(f"/v2/models/{NAME}/infer", json=_v2_flights(instances), timeout=30)
        v1 = client.post(f"/v1/models/{NAME}:predict", json={"instances": instances[:3]})
    assert v2.status_code == 200, v2.text
    (output,) = v2.json()["outputs"]
    assert output["name"] == "probability" and output["shape"] == [len(instances)]
    np.testing.assert_allclose(output["data"], expected, rtol=1e-6, atol=1e-7)
    assert v2.json()["id"] == "enriched-1"
    assert v1.status_code == 200, v1.text
    np.testing.assert_allclose(v1.json()["predictions"], expected[:3], rtol=1e-6, atol=1e-7)


def test_separate_transformer_serves_the_model_on_the_training_rows(
    transformer_in_front, onnx_path, last_hour
) -> None:
    instances, training = last_hour
    expected = _onnx_probability(onnx_path, training)
    with httpx.Client(base_url=f"http://127.0.0.1:{transformer_in_front}", timeout=30) as client:
        v2 = client.post(f"/v2/models/{NAME}/infer", json=_v2_flights(instances))
        v1 = client.post(f"/v1/models/{NAME}:predict", json={"instances": instances[:2]})
    assert v2.status_code == 200, v2.text
    (output,) = v2.json()["outputs"]
    np.testing.assert_allclose(output["data"], expected, rtol=1e-6, atol=1e-7)
    assert v1.status_code == 200, v1.text
    body = v1.json()
    predictions = body["outputs"][0]["data"] if "outputs" in body else body["predictions"]
    np.testing.assert_allclose(predictions, expected[:2], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"scheduled_departure": "next tuesday"}, "scheduled_departure"),
        ({"distance": -5.0}, "distance"),
        ({"carrier": None}, "carrier"),
    ],
)
def test_bad_flight_requests_are_400s_naming_the_field(
    enriched_predictor, last_hour, change, field
) -> None:
    instances, _ = last_hour
    body = _v2_flights([{**instances[0], **change}])
    url = f"http://127.0.0.1:{enriched_predictor.http_port}/v2/models/{NAME}/infer"
    response = httpx.post(url, json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json().get("field") == field
