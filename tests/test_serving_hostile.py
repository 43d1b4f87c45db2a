"""The predictor process against hostile input: whatever a client sends is a JSON 4xx (never a
5xx, a reset connection or a traceback in the log), bodies are limited while they are read,
only the predictor's own routes are reachable, and no listener is on all interfaces."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import math
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_fixtures import build_onnx_model, feature_rows

from e2eai.config import ServingSettings, Settings
from e2eai.serving.processes import PredictorProcess, start_predictor, stop_process
from e2eai.serving.rollout import ModelSource
from e2eai.serving.server import FastInferencePath
from e2eai.tasks.flights import schema

pytestmark = pytest.mark.timeout(180)
FEATURES = schema.model_features()
NAME = "flight-delay"
LIMIT = 200_000
ROWS = 100  # a request of ROWS + 1 V1 rows is under LIMIT bytes
V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PredictorProcess]:
    onnx_path = build_onnx_model(tmp_path_factory.mktemp("model") / "good.onnx")
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        serving=ServingSettings(model_name=NAME, max_payload_bytes=LIMIT, max_batch_rows=ROWS),
    )
    process = start_predictor(
        settings,
        ModelSource.from_path(onnx_path, "7"),
        slot="stable",
        extra_env={"PYTHONUNBUFFERED": "1"},  # the log test reads what is written at once
    )
    try:
        yield process
    finally:
        stop_process(process.pid, grace=5)


@pytest.fixture(scope="module")
def client(predictor: PredictorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{predictor.http_port}", timeout=30) as c:
        yield c


def _instances(n: int = 1) -> list[dict]:
    return [{f.name: r[f.name] for f in FEATURES} for r in feature_rows(n)]


def _v2(rows: int = 1) -> dict:
    instances = _instances(rows)
    return {
        "inputs": [
            {
                "name": f.name,
                "datatype": f.v2_datatype,
                "shape": [rows, 1],
                "data": [r[f.name] for r in instances],
            }
            for f in FEATURES
        ]
    }


def _with_input(input_name: str, **changes: object) -> dict:
    body = _v2()
    next(t for t in body["inputs"] if t["name"] == input_name).update(changes)
    return body


def _refused(response: httpx.Response, status: int = 400, field: str | None = None) -> dict:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "field" in body
    if field is not None:
        assert body["field"] == field, body
    return body


# -- numbers, nesting, encodings ----------------------------------------------------------


def test_an_integer_of_400_digits_is_400_naming_the_field(client):
    huge = "1" * 400
    v2 = json.dumps(_with_input("distance", data=["HUGE"])).replace('"HUGE"', huge)
    assert "digits" in _refused(client.post(V2, content=v2), field="distance")["error"]
    row = _instances()[0]
    v1 = json.dumps({"instances": [{**row, "distance": "HUGE"}]}).replace('"HUGE"', huge)
    _refused(client.post(V1, content=v1), field="distance")
    # Beyond float32 but within float64: refused, not silently made infinite.
    unbounded = "route_flights_24h"
    _refused(client.post(V2, json=_with_input(unbounded, data=[1e300])), field=unbounded)


def _with_raw(body: dict, text: str) -> str:
    """``body`` as JSON with the value "RAW" replaced by ``text`` (which json cannot write)."""
    return json.dumps(body).replace('"RAW"', text)


def test_deeply_nested_json_is_400(client):
    # 1,000 levels is within orjson's limit: the nesting itself must be refused.
    deep = "[" * 1000 + "250.0" + "]" * 1000
    response = client.post(V2, content=_with_raw(_with_input("distance", data="RAW"), deep))
    _refused(response, field="distance")
    deep = "[" * 1000 + '"UA"' + "]" * 1000
    response = client.post(V2, content=_with_raw(_with_input("carrier", data="RAW"), deep))
    _refused(response, field="carrier")
    response = client.post(V1, content=_with_raw({"instances": "RAW"}, "[" * 1000 + "]" * 1000))
    _refused(response, field="instances")
    # 10,000 levels is beyond every JSON parser's recursion limit.
    deeper = "[" * 10_000 + "]" * 10_000
    _refused(client.post(V2, content=_with_raw({**_v2(), "parameters": "RAW"}, deeper)))
    with_nan = _with_raw({**_with_input("distance", data=["NAN"]), "parameters": "RAW"}, deeper)
    _refused(client.post(V2, content=with_nan.replace('"NAN"', "NaN")))


@pytest.mark.parametrize(
    "data",
    [[[[250.0]]], [[250.0, 251.0]], [[]], [{}], [[250.0], 251.0]],
    ids=["three-levels", "two-values-a-row", "empty-row", "object", "mixed"],
)
def test_lists_inside_data_beyond_n_by_1_are_400_naming_the_input(client, data):
    _refused(client.post(V2, json=_with_input("distance", data=data)), field="distance")


@pytest.mark.parametrize("value", [[100, 200], [], {}, "far", True], ids=repr)
def test_v1_values_that_are_not_numbers_are_400_naming_field_and_row(client, value):
    instances = _instances(2)
    instances[1]["distance"] = value
    body = _refused(client.post(V1, json={"instances": instances}), field="distance")
    assert "row 1" in body["error"]


def test_v1_rows_with_uneven_keys_are_400_naming_field_and_row(client):
    instances = _instances(3)
    del instances[2]["carrier"]
    body = _refused(client.post(V1, json={"instances": instances}), field="carrier")
    assert "row 2" in body["error"]
    instances = _instances(2)
    instances[1]["colour"] = "red"
    body = _refused(client.post(V1, json={"instances": instances}), field="colour")
    assert "row 1" in body["error"]


@pytest.mark.parametrize(("token", "fragment"), [("NaN", "NaN"), ("Infinity", "infinite")])
def test_v1_nan_and_infinity_tokens_name_the_field(client, token, fragment):
    body = json.dumps({"instances": [{**_instances()[0], "distance": "TOKEN"}]})
    answer = _refused(client.post(V1, content=body.replace('"TOKEN"', token)), field="distance")
    assert fragment in answer["error"]


def test_no_rows_and_too_many_rows_name_the_field(client):
    empty = _v2()
    for tensor in empty["inputs"]:
        tensor.update(shape=[0], data=[])
    _refused(client.post(V2, json=empty), field="carrier")
    _refused(client.post(V1, json={"instances": []}), field="instances")
    rows = _instances()
    many = json.dumps({"instances": rows * (ROWS + 1)}, separators=(",", ":"))
    assert len(many) < LIMIT  # the row limit, not the byte limit, is what refuses it
    _refused(client.post(V1, content=many), status=413, field="instances")


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: b"\xef\xbb\xbf" + text.encode(),
        lambda text: text.encode("utf-16"),
        lambda text: text.encode("utf-16-le"),
        lambda text: text.encode("utf-32"),
    ],
    ids=["utf-8-bom", "utf-16", "utf-16-le", "utf-32"],
)
@pytest.mark.parametrize("route", [V1, V2])
def test_bodies_that_are_not_plain_utf8_are_400(client, encode, route):
    payload = {"instances": _instances()} if route == V1 else _v2()
    answer = _refused(client.post(route, content=encode(json.dumps(payload))))
    assert "UTF-8" in answer["error"]


def test_request_id_must_be_a_string(client):
    deep = "[" * 300 + '"x"' + "]" * 300
    _refused(client.post(V2, content=_with_raw({**_v2(), "id": "RAW"}, deep)), field="id")
    _refused(client.post(V2, content=_with_raw({**_v2(), "id": "RAW"}, '"\\ud800"')), field="id")


# -- the connection, the log, 500s ------------------------------------------------------------


def test_a_refused_request_keeps_the_connection_alive(predictor):
    bad = _instances()
    bad[0]["distance"] = [100, 200]
    base = f"http://127.0.0.1:{predictor.http_port}"
    with httpx.Client(base_url=base, timeout=10) as one_connection:
        refused = one_connection.post(V1, json={"instances": bad})
        assert refused.status_code == 400
        assert refused.headers.get("connection") != "close"
        assert one_connection.post(V1, json={"instances": _instances()}).status_code == 200
        assert one_connection.post(V2, content=b"{not json").status_code == 400
        assert one_connection.post(V2, json=_v2()).status_code == 200


def test_malformed_requests_write_no_tracebacks_to_the_log(client, predictor):
    before = predictor.log_path.stat().st_size
    bad_row = _instances()[0]
    for i in range(10):
        client.post(V1, json={"instances": [{**bad_row, "distance": [i, i]}]})
        client.post(V1, json={"instances": [{**bad_row, "carrier": {}}]})
        client.post(V1, content=b"[" * 5000)
        client.post(V2, json=_with_input("distance", data=[[[i]]]))
        client.post(V2, content=b"\xef\xbb\xbf{}")
        client.get(f"/v2/models/{NAME}?model_version={i}")
        client.get(f"/v2/models/other{i}")
    grown = predictor.log_path.read_bytes()[before:]
    assert len(grown) < 4096, grown[-2000:]
    assert b"Traceback" not in grown


def test_a_bug_is_a_500_with_a_request_id_and_no_internals():
    class BrokenPredictor:
        name = NAME
        model_version = "7"

        def feed_from_tensors(self, tensors):
            raise RuntimeError("secret internal detail")

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": json.dumps(_v2()).encode(), "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    app = FastInferencePath(None, BrokenPredictor(), LIMIT, frozenset())
    scope = {"type": "http", "method": "POST", "path": V2, "headers": []}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 500
    body = json.loads(sent[1]["body"])
    assert body["error"] == "internal error" and len(body["request_id"]) == 32
    assert "secret" not in sent[1]["body"].decode()


# -- body limits ------------------------------------------------------------------------------


def _chunks(total: int, size: int = 64_000) -> Iterator[bytes]:
    yield b'{"instances": ['
    sent = 0
    while sent < total:
        yield b"1," * (size // 2)
        sent += size
    yield b"1]}"


@pytest.mark.parametrize("route", [V1, V2])
def test_every_post_route_limits_chunked_bodies_while_reading(client, route):
    response = client.post(route, content=_chunks(5_000_000))  # no Content-Length
    assert "content-length" not in response.request.headers
    assert "limit" in _refused(response, status=413)["error"]
    big = b'{"instances": [' + b"1," * LIMIT + b"1]}"
    assert "limit" in _refused(client.post(route, content=big), status=413)["error"]
    assert client.post(V2, json=_v2()).status_code == 200


def test_compressed_bodies_are_415(client):
    response = client.post(
        V2, content=gzip.compress(json.dumps(_v2()).encode()), headers={"content-encoding": "gzip"}
    )
    assert "Content-Encoding" in _refused(response, status=415)["error"]


def test_posts_to_other_routes_are_404_without_reading_the_body(client):
    response = client.post("/v2/repository/index", content=_chunks(5_000_000))
    _refused(response, status=404)
    assert client.post(V2, json=_v2()).status_code == 200


# -- routes -----------------------------------------------------------------------------------


def test_the_model_repository_is_not_reachable(client):
    _refused(client.post(f"/v2/repository/models/{NAME}/unload"), status=404)
    assert client.get(f"/v2/models/{NAME}/ready").status_code == 200
    assert client.post(V2, json=_v2()).status_code == 200
    _refused(client.post(f"/v2/repository/models/{NAME}/load"), status=404)
    _refused(client.post("/v2/repository/index"), status=404)


@pytest.mark.parametrize(
    "route",
    [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{NAME}",
        f"/v2/models/{NAME}/ready",
        "/v1/models",
        f"/v1/models/{NAME}",
        "/metrics",
        "/openapi.json",
    ],
)
def test_the_read_only_routes_are_served(client, route):
    assert client.get(route).status_code == 200


@pytest.mark.parametrize(
    ("method", "route", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/v2/models", 404),
        ("GET", "/v2/models/other", 404),
        ("GET", "/v2/models/other/ready", 404),
        ("POST", "/v2/models/other/infer", 404),
        ("POST", "/v1/models/other:predict", 404),
        ("POST", "/v1/models/other:explain", 404),
        ("GET", f"/v1/models/{NAME}:explain", 405),
        ("GET", "/docs", 404),
        ("GET", "/redoc", 404),
        ("GET", f"/v2/models/{NAME}/versions/1", 501),
        ("GET", f"/v2/models/{NAME}/versions/1/ready", 501),
        ("POST", f"/v2/models/{NAME}/versions/1/infer", 501),
        ("GET", f"/v2/models/{NAME}?model_version=1", 501),
        ("GET", f"/v2/models/{NAME}/ready?model%5Fversion=1", 501),
        ("GET", V2, 405),
        ("PUT", V1, 405),
        ("DELETE", "/v2/health/ready", 405),
    ],
)
def test_everything_else_is_a_json_error(client, method, route, status):
    _refused(client.request(method, route), status=status)


# -- listeners and gRPC -----------------------------------------------------------------------


def test_no_listener_is_on_all_interfaces(predictor):
    import psutil

    process = psutil.Process(predictor.pid)
    listening = [
        conn.laddr
        for member in [process, *process.children(recursive=True)]
        for conn in member.connections(kind="inet")  # psutil 5.9 name
        if conn.status == psutil.CONN_LISTEN
    ]
    ports = {address.port for address in listening}
    assert {predictor.http_port, predictor.grpc_port} <= ports
    for address in listening:  # gRPC's socket is dual-stack: 127.0.0.1 as ::ffff:127.0.0.1
        ip = ipaddress.ip_address(address.ip)
        ip = getattr(ip, "ipv4_mapped", None) or ip
        assert ip.is_loopback and not ip.is_unspecified, listening


def _grpc_request(**override: list) -> object:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    rows = feature_rows(1)
    tensors = []
    for f in FEATURES:
        if f.kind == "numeric":
            value = rows[0][f.name]
            contents = pb.InferTensorContents(
                fp64_contents=override.get(f.name, [math.nan if value is None else value])
            )
            datatype = "FP64"
        else:
            contents = pb.InferTensorContents(bytes_contents=[rows[0][f.name].encode()])
            datatype = "BYTES"
        tensors.append(
            pb.ModelInferRequest.InferInputTensor(
                name=f.name, datatype=datatype, shape=[1, 1], contents=contents
            )
        )
    return pb.ModelInferRequest(model_name=NAME, inputs=tensors)


def test_grpc_refuses_bad_input_and_the_model_repository(predictor):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    with grpc.insecure_channel(f"127.0.0.1:{predictor.grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert stub.ModelInfer(_grpc_request(), timeout=10).raw_output_contents
        for field, values in [("distance", [1e300]), ("route_flights_24h", [1e300])]:
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(_grpc_request(**{field: values}), timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(_grpc_request(distance=[1.0, 2.0, 3.0]), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as info:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=NAME))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert stub.ModelReady(pb.ModelReadyRequest(name=NAME), timeout=10).ready
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(pb.ModelInferRequest(model_name="other"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


# -- any JSON anywhere ------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    feature=st.sampled_from([f.name for f in FEATURES]),
    key=st.sampled_from(["data", "shape", "datatype", "name", "parameters"]),
    value=JSON_VALUES,
)
def test_any_json_value_anywhere_is_answered_without_a_5xx(client, feature, key, value):
    body = _with_input(feature, **{key: value})
    v2 = client.post(V2, content=json.dumps(body))
    v1 = client.post(V1, content=json.dumps({"instances": [{**_instances()[0], feature: value}]}))
    for response in (v2, v1):
        assert response.status_code < 500, response.text[:300]
        if response.status_code != 200:
            _refused(response, status=response.status_code)
