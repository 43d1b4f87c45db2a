"""Explanations at the predictor: V1 ``:explain``, V2 and gRPC requested outputs.

A served Wide & Deep graph answers its contributions with its probabilities, and they add up
with the base value to the logit; a graph without them (logistic regression) still answers
``:explain`` with its predictions and model inputs, and refuses a request for the output.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from onnx_fixtures import (
    build_explaining_onnx_model,
    build_onnx_model,
    feature_rows,
    grpc_infer_request,
    v2_rows_body,
)

from e2eai.config import ServingSettings, Settings
from e2eai.serving.processes import PredictorProcess, start_predictor, stop_process
from e2eai.serving.rollout import ModelSource
from e2eai.tasks.flights import schema

pytestmark = pytest.mark.timeout(180)
FEATURES = schema.model_features()
NAME = "flight-delay"


def _serve(tmp: Path, onnx: Path) -> PredictorProcess:
    settings = Settings(home=tmp / "home", serving=ServingSettings(model_name=NAME))
    return start_predictor(settings, ModelSource.from_path(onnx, "3"), slot="stable")


@pytest.fixture(scope="module")
def explaining(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PredictorProcess]:
    tmp = tmp_path_factory.mktemp("explaining")
    process = _serve(tmp, build_explaining_onnx_model(tmp / "model" / "model.onnx"))
    try:
        yield process
    finally:
        stop_process(process.pid, grace=5)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PredictorProcess]:
    tmp = tmp_path_factory.mktemp("plain")
    process = _serve(tmp, build_onnx_model(tmp / "logreg.onnx"))
    try:
        yield process
    finally:
        stop_process(process.pid, grace=5)


def _url(process: PredictorProcess, path: str) -> str:
    return f"http://127.0.0.1:{process.http_port}{path}"


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def test_v1_explain_answers_predictions_inputs_and_contributions(explaining):
    rows = feature_rows(8)
    instances = [{f.name: r[f.name] for f in FEATURES} for r in rows]
    explained = httpx.post(
        _url(explaining, f"/v1/models/{NAME}:explain"), json={"instances": instances}
    )
    predicted = httpx.post(
        _url(explaining, f"/v1/models/{NAME}:predict"), json={"instances": instances}
    )
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert body["predictions"] == pytest.approx(predicted.json()["predictions"], abs=1e-6)
    assert body["model_version"] == "3"
    for p, features, explanation, row in zip(
        body["predictions"], body["features"], body["explanations"], rows, strict=True
    ):
        total = explanation["base_value"] + sum(
            c["contribution"] for c in explanation["contributions"]
        )
        assert total == pytest.approx(_logit(p), abs=1e-4)
        assert features["carrier"] == row["carrier"]
        names = [c["feature"] for c in explanation["contributions"]]
        assert sorted(names) == sorted([f.name for f in FEATURES] + ["deep"])
        sizes = [abs(c["contribution"]) for c in explanation["contributions"]]
        assert sizes == sorted(sizes, reverse=True)
        if row["temp"] is None:
            assert features["temp"] is None


def test_v2_requested_outputs_json_and_binary(explaining):
    rows = feature_rows(5)
    url = _url(explaining, f"/v2/models/{NAME}/infer")
    both = [{"name": "probability"}, {"name": "contributions"}]
    answer = httpx.post(url, json=v2_rows_body(rows, both)).json()
    outputs = {o["name"]: o for o in answer["outputs"]}
    width = len(FEATURES) + 1
    assert outputs["contributions"]["shape"] == [5, width]
    contributions = np.array(outputs["contributions"]["data"]).reshape(5, width)
    metadata = httpx.get(_url(explaining, f"/v2/models/{NAME}")).json()
    assert {"name": "contributions", "datatype": "FP32", "shape": [-1, width]} in metadata[
        "outputs"
    ]
    p = np.array(outputs["probability"]["data"])
    # The default answer is unchanged: probability only.
    default = httpx.post(url, json=v2_rows_body(rows)).json()
    assert [o["name"] for o in default["outputs"]] == ["probability"]
    assert default["outputs"][0]["data"] == pytest.approx(p.tolist(), abs=1e-7)
    # Binary: both tensors after the JSON header, in the order of "outputs".
    binary = [
        {"name": n, "parameters": {"binary_data": True}} for n in ("probability", "contributions")
    ]
    response = httpx.post(url, json=v2_rows_body(rows, binary))
    cut = int(response.headers["inference-header-content-length"])
    raw = response.content[cut:]
    assert np.frombuffer(raw[:20], "<f4") == pytest.approx(p, abs=1e-7)
    np.testing.assert_allclose(
        np.frombuffer(raw[20:], "<f4").reshape(5, width), contributions, atol=1e-6
    )
    spread = contributions.sum(axis=1)
    logits = np.log(p) - np.log1p(-p)
    assert np.ptp(logits - spread) < 1e-4  # a constant offset: the base value


def test_grpc_asks_for_the_contributions(explaining):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    rows = feature_rows(3)
    wanted = [pb.ModelInferRequest.InferRequestedOutputTensor(name="contributions")]
    request = grpc_infer_request(rows, NAME, outputs=wanted)
    with grpc.insecure_channel(f"127.0.0.1:{explaining.grpc_port}") as channel:
        response = GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert [o.name for o in response.outputs] == ["contributions"]
    values = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
    assert values.shape == (3 * (len(FEATURES) + 1),) and np.isfinite(values).all()


def test_a_graph_without_contributions_explains_nothing_but_still_answers(plain):
    rows = feature_rows(2)
    instances = [{f.name: r[f.name] for f in FEATURES} for r in rows]
    body = httpx.post(
        _url(plain, f"/v1/models/{NAME}:explain"), json={"instances": instances}
    ).json()
    assert len(body["predictions"]) == 2 and body["explanations"] is None
    assert body["features"][1]["dest"] == rows[1]["dest"]
    refused = httpx.post(
        _url(plain, f"/v2/models/{NAME}/infer"),
        json=v2_rows_body(rows, [{"name": "contributions"}]),
    )
    assert refused.status_code == 400
    assert refused.json()["field"] == "outputs[0].name"
    assert "contributions" in refused.json()["error"]
