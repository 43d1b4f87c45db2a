"""The predictor as a real kserve.ModelServer process: V1, V2 (JSON and binary), gRPC, health,
metadata, and schema validation mapped to HTTP 400/413 and gRPC INVALID_ARGUMENT."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from onnx_fixtures import build_onnx_model, feature_rows, grpc_infer_request

from e2eai.config import ServingSettings, Settings
from e2eai.serving.processes import PredictorProcess, start_predictor, stop_process
from e2eai.serving.rollout import ModelSource
from e2eai.tasks.flights import schema

pytestmark = pytest.mark.timeout(120)
FEATURES = schema.model_features()
NAME = "flight-delay"


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_onnx_model(tmp_path_factory.mktemp("model") / "good.onnx")


@pytest.fixture(scope="module")
def predictor(
    tmp_path_factory: pytest.TempPathFactory, onnx_path: Path
) -> Iterator[PredictorProcess]:
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        serving=ServingSettings(model_name=NAME, max_payload_bytes=200_000, max_batch_rows=500),
    )
    process = start_predictor(settings, ModelSource.from_path(onnx_path, "7"), slot="stable")
    try:
        yield process
    finally:
        stop_process(process.pid, grace=5)


@pytest.fixture(scope="module")
def client(predictor: PredictorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{predictor.http_port}", timeout=10) as c:
        yield c


def _v2(rows: list[dict]) -> dict:
    return {
        "id": "req-1",
        "inputs": [
            {
                "name": f.name,
                "datatype": f.v2_datatype,
                "shape": [len(rows), 1],
                "data": [r[f.name] for r in rows],
            }
            for f in FEATURES
        ],
    }


def _expected(onnx_path: Path, rows: list[dict]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path))
    feed = {}
    for f in FEATURES:
        values = [r[f.name] for r in rows]
        if f.kind == "numeric":
            feed[f.name] = np.array(
                [math.nan if v is None else v for v in values], dtype=np.float32
            ).reshape(-1, 1)
        else:
            feed[f.name] = np.array(["" if v is None else v for v in values], dtype=object).reshape(
                -1, 1
            )
    return session.run(["probability"], feed)[0]


def test_health_and_metadata_follow_the_open_inference_protocol(client):
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get(f"/v2/models/{NAME}/ready").status_code == 200
    metadata = client.get(f"/v2/models/{NAME}").json()
    assert [i["name"] for i in metadata["inputs"]] == [f.name for f in FEATURES]
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]}["carrier"] == "BYTES"
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]}["distance"] == "FP32"
    assert metadata["outputs"] == [{"name": "probability", "datatype": "FP32", "shape": [-1]}]


def test_v2_json_infer_matches_onnx_runtime(client, onnx_path):
    rows = feature_rows(5)
    rows[0]["wind_gust"] = None
    response = client.post(f"/v2/models/{NAME}/infer", json=_v2(rows))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-1" and body["model_version"] == "7"
    (output,) = body["outputs"]
    assert output["name"] == "probability" and output["shape"] == [5]
    np.testing.assert_allclose(output["data"], _expected(onnx_path, rows), rtol=1e-6)


def test_v1_predict_matches_v2(client, onnx_path):
    rows = feature_rows(3)
    instances = [{f.name: r[f.name] for f in FEATURES} for r in rows]
    response = client.post(f"/v1/models/{NAME}:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        response.json()["predictions"], _expected(onnx_path, rows), rtol=1e-6
    )


def test_v2_binary_tensor_extension_with_tritonclient(predictor, onnx_path):
    import tritonclient.http as triton

    rows = feature_rows(256, seed=3)
    client = triton.InferenceServerClient(f"127.0.0.1:{predictor.http_port}")
    try:
        inputs = []
        for f in FEATURES:
            values = [r[f.name] for r in rows]
            if f.kind == "numeric":
                array = np.array(
                    [math.nan if v is None else v for v in values], dtype=np.float32
                ).reshape(-1, 1)
                tensor = triton.InferInput(f.name, list(array.shape), "FP32")
            else:
                array = np.array([v.encode() for v in values], dtype=object).reshape(-1, 1)
                tensor = triton.InferInput(f.name, list(array.shape), "BYTES")
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        result = client.infer(
            NAME, inputs, outputs=[triton.InferRequestedOutput("probability", binary_data=True)]
        )
        np.testing.assert_allclose(
            result.as_numpy("probability"), _expected(onnx_path, rows), rtol=1e-6
        )
    finally:
        client.close()


def test_grpc_infer_and_invalid_argument(predictor, onnx_path):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    rows = feature_rows(2)

    def request(override: dict | None = None) -> pb.ModelInferRequest:
        return grpc_infer_request(rows, NAME, override, id="g1")

    with grpc.insecure_channel(f"127.0.0.1:{predictor.grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(request(), timeout=10)
        probability = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
        np.testing.assert_allclose(probability, _expected(onnx_path, rows), rtol=1e-6)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request({"distance": [10.0, 99999.0]}), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "distance" in info.value.details() and "row 1" in info.value.details()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (lambda b: b["inputs"].pop(), schema.model_features()[-1].name),
        (lambda b: b["inputs"][0].update(data=[3]), "carrier"),
        (lambda b: b["inputs"][3].update(data=[-5.0]), "distance"),
        (lambda b: b.pop("inputs"), "inputs"),
    ],
)
def test_v2_bad_requests_are_400_naming_the_field(client, body, field):
    payload = _v2(feature_rows(1))
    body(payload)
    response = client.post(f"/v2/models/{NAME}/infer", json=payload)
    assert response.status_code == 400
    assert field in response.json()["error"]


def test_nan_token_and_broken_json_are_400_not_500(client):
    payload = _v2(feature_rows(1))
    payload["inputs"][3]["data"] = [float("nan")]
    response = client.post(f"/v2/models/{NAME}/infer", content=json.dumps(payload))
    assert response.status_code == 400 and "distance" in response.json()["error"]
    response = client.post(f"/v2/models/{NAME}/infer", content=b"{not json")
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    response = client.post(f"/v1/models/{NAME}:predict", content=b"{not json")
    assert response.status_code == 400


def test_oversized_payloads_are_413(client):
    # The byte limit (200 kB here), V2 and V1: refused before the body is parsed.
    too_big = json.dumps(_v2(feature_rows(501)))
    assert len(too_big) > 200_000
    response = client.post(f"/v2/models/{NAME}/infer", content=too_big)
    assert response.status_code == 413 and "limit of 200000 bytes" in response.json()["error"]
    rows = feature_rows(1)
    big = {"instances": [{f.name: rows[0][f.name] for f in FEATURES}] * 600}
    response = client.post(f"/v1/models/{NAME}:predict", json=big)
    assert response.status_code == 413 and "limit of 200000 bytes" in response.json()["error"]
    # The row limit (500 here): 501 rows of short values fit in the byte limit.
    short = {k: round(v, 1) if isinstance(v, float) else v for k, v in rows[0].items()}
    too_many_rows = json.dumps(_v2([short] * 501), separators=(",", ":"))
    assert len(too_many_rows) <= 200_000
    response = client.post(f"/v2/models/{NAME}/infer", content=too_many_rows)
    assert response.status_code == 413, response.text
    assert "501 rows exceed the limit of 500" in response.json()["error"]
    assert response.json()["field"] == FEATURES[0].name
