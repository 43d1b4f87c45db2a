"""Bounded fuzzing of local serving: the predictor and the router in front of it.

A real predictor process and a real local deployment (router + stable predictor) get
schemathesis cases generated from the predictor's OpenAPI, feature-aware Hypothesis mutations
of valid V1/V2 requests, and hand-written malformed requests by category (invalid JSON, text
encodings, deep nesting, huge numbers, NaN/Inf, wrong shapes and datatypes, non-scalar values,
uneven V1 rows, oversized and chunked bodies, binary tensors with wrong byte counts, unknown
and repository routes, gRPC). The contract: no response >= 500 except 501 (what kserve does
not implement), a 4xx for what is clearly invalid, and afterwards a valid request answers
exactly as before, both processes live and the router has counted no model error.

Every request is recorded; the module prints requests sent and status codes per category
(``pytest -s``) and writes them as JSON to ``$E2EAI_FUZZ_REPORT`` when it is set. Generation
is derandomised, so a run sends the same requests every time.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from onnx_fixtures import build_onnx_model, feature_rows, v2_rows_body

from e2eai.auth import admin_token, bearer
from e2eai.config import ServingSettings, Settings
from e2eai.serving.local import LocalServing
from e2eai.serving.processes import (
    PredictorProcess,
    free_port,
    pid_alive,
    start_predictor,
    stop_process,
)
from e2eai.serving.rollout import ModelSource
from e2eai.serving.state import ServingState
from e2eai.tasks.flights import schema

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NAME = "flight-delay"
FEATURES = schema.model_features()
NAMES = [f.name for f in FEATURES]
MAX_PAYLOAD = 200_000
MAX_ROWS = 50
V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"
ROWS = feature_rows(3, seed=5)
TARGETS = ("predictor", "router")
#: Per operation and generation mode; hypothesis stops earlier when an operation has fewer.
SCHEMATHESIS_EXAMPLES = 30
MUTATION_EXAMPLES = 250
#: gRPC codes that are the client's fault (the 4xx of gRPC) or "not implemented".
GRPC_REJECTED = frozenset(
    {
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "OUT_OF_RANGE",
        "FAILED_PRECONDITION",
        "RESOURCE_EXHAUSTED",
        "UNIMPLEMENTED",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
    }
)

# What a case must get back: "rejected" = a 4xx, "handled" = anything but a server fault
# (>= 500 other than 501, or no answer), or an explicit set of status codes.
Expect = str | frozenset[int]
REJECTED: Expect = "rejected"
HANDLED: Expect = "handled"


# -- the ledger of every request --------------------------------------------------------------


@dataclass
class Outcome:
    """One request of one case to one target, and what came back."""

    category: str
    case: str
    target: str
    status: int | str  # an HTTP status, a gRPC code name, or "no answer: ..."
    body: str
    problem: str | None  # None when the answer keeps the contract


@dataclass
class FuzzLedger:
    """Every request sent by this module, for the failure messages and the closing table."""

    outcomes: list[Outcome] = field(default_factory=list, repr=False)

    def record(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        return outcome

    def summary(self) -> list[dict[str, Any]]:
        groups: dict[tuple[str, str], list[Outcome]] = {}
        for o in self.outcomes:
            groups.setdefault((o.category, o.target), []).append(o)
        return [
            {
                "category": category,
                "target": target,
                "sent": len(items),
                "statuses": dict(sorted(Counter(str(o.status) for o in items).items())),
                "violations": sum(o.problem is not None for o in items),
            }
            for (category, target), items in groups.items()
        ]

    def table(self) -> str:
        rows = self.summary()
        width = max([len(r["category"]) for r in rows] + [8])
        lines = [f"{'category':<{width}}  {'target':<9}  {'sent':>5}  {'bad':>4}  statuses"]
        for r in rows:
            statuses = " ".join(f"{code}x{n}" for code, n in r["statuses"].items())
            lines.append(
                f"{r['category']:<{width}}  {r['target']:<9}  {r['sent']:>5}  "
                f"{r['violations']:>4}  {statuses}"
            )
        total = len(self.outcomes)
        bad = sum(o.problem is not None for o in self.outcomes)
        lines.append(f"{'total':<{width}}  {'':<9}  {total:>5}  {bad:>4}")
        return "\n".join(lines)

    def report(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "violations": [asdict(o) for o in self.outcomes if o.problem is not None],
            "requests": [[o.category, o.case, o.target, o.status] for o in self.outcomes],
        }


def assert_kept_contract(outcomes: list[Outcome], what: str) -> None:
    """Fail naming every category/case/target whose answer broke the contract."""
    bad = [o for o in outcomes if o.problem is not None]
    if bad:
        lines = [
            f"{o.category} / {o.case} -> {o.target}: {o.status} ({o.problem}): {o.body}"
            for o in bad
        ]
        pytest.fail(
            f"{len(bad)} of {len(outcomes)} requests of {what} broke the contract:\n"
            + "\n".join(lines),
            pytrace=False,
        )


def http_problem(status: int, expect: Expect) -> str | None:
    server_fault = status >= 500 and status != 501
    if server_fault:
        return "server error"
    if expect == REJECTED and not 400 <= status < 500:
        return "want a 4xx"
    if isinstance(expect, frozenset) and status not in expect:
        return f"want {'/'.join(map(str, sorted(expect)))}"
    return None


def snippet(body: bytes | str, limit: int = 240) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= limit else text[:limit] + "…"


# -- processes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Serving:
    """The standalone predictor and the local deployment (router + stable predictor)."""

    predictor: PredictorProcess
    deployment: ServingState
    settings: Settings = field(repr=False)

    def base_url(self, target: str) -> str:
        if target == "predictor":
            return f"http://127.0.0.1:{self.predictor.http_port}"
        return self.deployment.endpoint


@pytest.fixture(scope="module")
def ledger() -> Iterator[FuzzLedger]:
    book = FuzzLedger()
    yield book
    if book.outcomes:
        print("\nrequests sent per category, status codes (bad = broke the contract)")
        print(book.table())
        report = os.environ.get("E2EAI_FUZZ_REPORT")
        if report:
            Path(report).write_text(json.dumps(book.report(), indent=2, default=str))


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    onnx = build_onnx_model(tmp_path_factory.mktemp("model") / "good.onnx")
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        serving=ServingSettings(
            port=free_port(),
            model_name=NAME,
            max_payload_bytes=MAX_PAYLOAD,
            max_batch_rows=MAX_ROWS,
        ),
    )
    predictor = start_predictor(settings, ModelSource.from_path(onnx, "7"), slot="stable")
    manager = LocalServing(settings)
    try:
        deployment = manager.start(ModelSource.from_path(onnx, "7"))
        yield Serving(predictor, deployment, settings)
    finally:
        manager.stop()
        stop_process(predictor.pid, grace=5)


@pytest.fixture(scope="module")
def clients(serving: Serving) -> Iterator[dict[str, httpx.Client]]:
    opened = {t: httpx.Client(base_url=serving.base_url(t), timeout=20) for t in TARGETS}
    try:
        yield opened
    finally:
        for client in opened.values():
            client.close()


# -- request bodies ----------------------------------------------------------------------------


def v2_body(rows: list[dict[str, Any]] = ROWS[:2]) -> dict[str, Any]:
    return v2_rows_body(rows, id="fuzz")


def v1_body(rows: list[dict[str, Any]] = ROWS[:2]) -> dict[str, Any]:
    return {"instances": [{n: r[n] for n in NAMES} for r in rows]}


def v2_with(feature: str, **changes: Any) -> dict[str, Any]:
    """A valid V2 body whose tensor ``feature`` has ``changes`` (None removes a key)."""
    body = v2_body()
    for tensor in body["inputs"]:
        if tensor["name"] == feature:
            for key, value in changes.items():
                if value is None:
                    tensor.pop(key, None)
                else:
                    tensor[key] = value
    return body


def v2_inputs() -> list[dict[str, Any]]:
    return v2_body()["inputs"]


def without(row: dict[str, Any], feature: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != feature}


def v1_with(row: int, feature: str, value: Any) -> dict[str, Any]:
    body = v1_body()
    body["instances"][row][feature] = value
    return body


def spliced(obj: Any, **raw: str) -> bytes:
    """``obj`` as JSON with each string value ``"<key>"`` replaced by the raw text ``raw[key]``:
    for what ``json.dumps`` cannot write (2,000-level nesting, NaN tokens in chosen places)."""
    text = json.dumps(obj)
    for placeholder, fragment in raw.items():
        text = text.replace(json.dumps(f"<{placeholder}>"), fragment)
    return text.encode()


def nested(depth: int) -> str:
    return "[" * depth + "1.0" + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def as_json(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def f32(*values: float | None) -> bytes:
    return np.array([math.nan if v is None else v for v in values], "<f4").tobytes()


def strings(*items: bytes, lie: int | None = None) -> bytes:
    """BYTES elements with their 4-byte length prefixes; ``lie`` overstates the first one."""
    lengths = [len(item) for item in items]
    if lie is not None:
        lengths[0] = lie
    return b"".join(n.to_bytes(4, "little") + item for n, item in zip(lengths, items, strict=True))


#: Changes a binary request in place: (its JSON header, the raw bytes of each tensor).
Mutation = Callable[[dict[str, Any], list[bytes]], None]


def binary_v2(
    rows: list[dict[str, Any]] = ROWS[:2],
    mutate: Mutation | None = None,
) -> tuple[bytes, bytes]:
    """A V2 binary-extension request: (JSON header, raw tensor bytes), before ``mutate``."""
    inputs, blobs = [], []
    for f in FEATURES:
        values = [r[f.name] for r in rows]
        if f.kind == "numeric":
            blob = f32(*values)
        else:
            blob = strings(*[("" if v is None else v).encode() for v in values])
        inputs.append(
            {
                "name": f.name,
                "datatype": f.v2_datatype,
                "shape": [len(rows), 1],
                "parameters": {"binary_data_size": len(blob)},
            }
        )
        blobs.append(blob)
    request = {"id": "fuzz-binary", "inputs": inputs}
    if mutate is not None:
        mutate(request, blobs)
    return json.dumps(request).encode(), b"".join(blobs)


# -- hand-written HTTP cases -------------------------------------------------------------------

JSON_HEADERS = (("content-type", "application/json"),)


@dataclass(frozen=True)
class HttpCase:
    """One hand-written request; ``content`` as a tuple is sent chunked (no Content-Length)."""

    name: str
    method: str
    path: str
    content: bytes | tuple[bytes, ...] | None = None
    headers: tuple[tuple[str, str], ...] = JSON_HEADERS
    expect: Expect = REJECTED


def post(name: str, path: str, body: Any, expect: Expect = REJECTED, **headers: str) -> HttpCase:
    content = body if isinstance(body, bytes | tuple) else as_json(body)
    merged = dict(JSON_HEADERS) | {k.replace("_", "-"): v for k, v in headers.items()}
    return HttpCase(name, "POST", path, content, tuple(merged.items()), expect)


def binary_case(
    name: str,
    mutate: Mutation | None = None,
    *,
    header_length: str | None = None,
    tail: bytes = b"",
    expect: Expect = REJECTED,
) -> HttpCase:
    header, raw = binary_v2(mutate=mutate)
    length = str(len(header)) if header_length is None else header_length
    headers = [("content-type", "application/octet-stream")]
    if length != "":
        headers.append((HEADER_LENGTH, length))
    return HttpCase(name, "POST", V2, header + raw + tail, tuple(headers), expect)


def _blob(index: int, blob: bytes) -> Mutation:
    def mutate(request: dict[str, Any], blobs: list[bytes]) -> None:
        blobs[index] = blob
        request["inputs"][index]["parameters"]["binary_data_size"] = len(blob)

    return mutate


def _size(index: int, size: Any) -> Mutation:
    def mutate(request: dict[str, Any], _: list[bytes]) -> None:
        request["inputs"][index]["parameters"]["binary_data_size"] = size

    return mutate


def _declared(index: int, datatype: str) -> Mutation:
    def mutate(request: dict[str, Any], _: list[bytes]) -> None:
        request["inputs"][index]["datatype"] = datatype

    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(request: dict[str, Any], blobs: list[bytes]) -> None:
        for m in mutations:
            m(request, blobs)

    return mutate


def _binary_output(request: dict[str, Any], _: list[bytes]) -> None:
    request["parameters"] = {"binary_data_output": True}


HEADER_LENGTH = "inference-header-content-length"
DISTANCE = NAMES.index("distance")
CARRIER = NAMES.index("carrier")
PADDING = "x" * (MAX_PAYLOAD + 50_000)
UNDER_LIMIT = "x" * (MAX_PAYLOAD // 2)
SURROGATE = '"\\ud800"'
VALID_V2 = as_json(v2_body())
VALID_V1 = as_json(v1_body())
DEEP = nested_object(10_000)
MANY_ROWS = feature_rows(MAX_ROWS + 10, seed=6)


def v2(name: str, body: Any, expect: Expect = REJECTED, **headers: str) -> HttpCase:
    return post(f"v2 {name}", V2, body, expect, **headers)


def v1(name: str, body: Any, expect: Expect = REJECTED, **headers: str) -> HttpCase:
    return post(f"v1 {name}", V1, body, expect, **headers)


def v2_token(feature: str, token: str, key: str = "data") -> bytes:
    """A valid V2 body whose ``feature`` has the raw JSON ``token`` first in ``key``."""
    values = {"data": ["<t>", ROWS[1][feature]], "shape": ["<t>", 1]}[key]
    return spliced(v2_with(feature, **{key: values}), t=token)


def v1_token(feature: str, token: str) -> bytes:
    return spliced(v1_with(0, feature, "<t>"), t=token)


def with_bytes(body: bytes, text: str, raw: bytes) -> bytes:
    return body.replace(text.encode(), raw, 1)


def padded(body: dict[str, Any], padding: str) -> dict[str, Any]:
    return {**body, "padding": padding}


def chunks(body: Any, size: int = 16_384) -> tuple[bytes, ...]:
    data = body if isinstance(body, bytes) else as_json(body)
    return tuple(data[i : i + size] for i in range(0, len(data), size))


NINES = "9" * 400
ONLY_413 = frozenset({413})
ONLY_200 = frozenset({200})
NOT_FOUND = frozenset({404})
NOT_ALLOWED = frozenset({404, 405})
NOT_SERVED = frozenset({404, 501})
FIRST_ROW = v1_body()["instances"][0]
SECOND_ROW = v1_body()["instances"][1]

HAND_WRITTEN: dict[str, list[HttpCase]] = {
    "invalid-json": [
        v2("empty body", b""),
        v2("truncated", VALID_V2[:-7]),
        v2("trailing garbage", VALID_V2 + b"}}"),
        v2("single quotes", b"{'inputs': []}"),
        v2("top-level array", b"[1, 2, 3]"),
        v2("top-level null", b"null"),
        v2("top-level string", b'"inputs"'),
        v2("NUL byte", b"\x00"),
        v2("lone surrogate in the id", spliced({**v2_body(), "id": "<s>"}, s=SURROGATE), HANDLED),
        v2("lone surrogate in a category", v2_token("carrier", SURROGATE), HANDLED),
        v1("empty body", b""),
        v1("truncated", VALID_V1[:-7]),
        v1("top-level array", b"[1, 2, 3]"),
        v1("top-level null", b"null"),
        v1("instances null", {"instances": None}),
        v1("form-encoded", b"instances=1&x=2", content_type="application/x-www-form-urlencoded"),
    ],
    "encodings": [
        v2("UTF-8 BOM", b"\xef\xbb\xbf" + VALID_V2, HANDLED),
        v2("UTF-16 with BOM", VALID_V2.decode().encode("utf-16"), HANDLED),
        v2("UTF-16-BE without BOM", VALID_V2.decode().encode("utf-16-be"), HANDLED),
        v2("UTF-32", VALID_V2.decode().encode("utf-32"), HANDLED),
        v2("invalid UTF-8 in a string", with_bytes(v2_token("carrier", '"@"'), "@", b"\xff\xfe")),
        v2("NUL inside a category", v2_with("carrier", data=["U\x00A", "UA"]), HANDLED),
        v2(
            "charset=utf-16, UTF-8 body",
            VALID_V2,
            HANDLED,
            content_type="text/json; charset=utf-16",
        ),
        v2("gzip declared, plain body", VALID_V2, HANDLED, content_encoding="gzip"),
        v2("gzip body", gzip.compress(VALID_V2), HANDLED, content_encoding="gzip"),
        v1("UTF-8 BOM", b"\xef\xbb\xbf" + VALID_V1, HANDLED),
        v1("UTF-16 with BOM", VALID_V1.decode().encode("utf-16"), HANDLED),
        v1("invalid UTF-8 in a string", with_bytes(v1_token("carrier", '"@"'), "@", b"\xff\xfe")),
        v1("gzip body", gzip.compress(VALID_V1), HANDLED, content_encoding="gzip"),
    ],
    "deep-nesting": [
        v2("data nested 2,000 levels", spliced(v2_with("distance", data="<d>"), d=nested(2000))),
        v2("parameters nested 10,000 levels", spliced({**v2_body(), "parameters": "<p>"}, p=DEEP)),
        v2("inputs nested 2,000 levels", spliced({"inputs": "<i>"}, i=nested(2000))),
        v2(
            "tensor parameters 2,000 levels", spliced(v2_with("distance", parameters="<p>"), p=DEEP)
        ),
        v1("instances nested 2,000 levels", spliced({"instances": "<i>"}, i=nested(2000))),
        v1("a value nested 2,000 levels", v1_token("distance", nested(2000))),
        v1("parameters nested 10,000 levels", spliced({**v1_body(), "parameters": "<p>"}, p=DEEP)),
    ],
    "huge-numbers": [
        v2("400-digit integer", v2_token("distance", NINES)),
        v2("negative 400-digit integer", v2_token("distance", "-" + NINES)),
        v2("1e400 literal", v2_token("distance", "1e400")),
        v2("400-digit integer in shape", v2_token("distance", NINES, "shape")),
        v2("shape 2**63", v2_with("distance", shape=[2**63, 1])),
        v2("1e-400 literal (underflows to 0)", v2_token("wind_gust", "1e-400"), HANDLED),
        v2("400-digit id", spliced({**v2_body(), "id": "<n>"}, n=NINES), HANDLED),
        v1("400-digit integer", v1_token("distance", NINES)),
        v1("1e400 literal", v1_token("distance", "1e400")),
    ],
    "nan-inf": [
        v2("NaN in a nullable input", v2_token("wind_gust", "NaN"), HANDLED),
        v2("NaN in a required input", v2_token("distance", "NaN")),
        v2("Infinity", v2_token("distance", "Infinity")),
        v2("-Infinity in a nullable input", v2_token("wind_gust", "-Infinity")),
        v2("NaN in shape", v2_token("distance", "NaN", "shape")),
        v2("'NaN' as a string", v2_with("distance", data=["NaN", 10.0])),
        v1("NaN in a required field", v1_token("distance", "NaN")),
        v1("Infinity", v1_token("temp", "Infinity")),
        v1("NaN in a nullable field", v1_token("temp", "NaN"), HANDLED),
    ],
    "wrong-shapes": [
        v2("shape [0], no data", {"inputs": [t | {"shape": [0], "data": []} for t in v2_inputs()]}),
        v2("shape [2, 2]", v2_with("distance", shape=[2, 2])),
        v2("shape [1, 2]", v2_with("distance", shape=[1, 2])),
        v2("shape [-1]", v2_with("distance", shape=[-1])),
        v2("shape [-1, 1]", v2_with("distance", shape=[-1, 1])),
        v2("shape of strings", v2_with("distance", shape=["2", "1"])),
        v2("shape a string", v2_with("distance", shape="2")),
        v2("shape null", spliced(v2_with("distance", shape="<s>"), s="null")),
        v2("shape []", v2_with("distance", shape=[])),
        v2("shape [2, 1, 1]", v2_with("distance", shape=[2, 1, 1])),
        v2("shape [true, 1]", v2_with("distance", shape=[True, 1])),
        v2("shape [1.5, 1]", v2_with("distance", shape=[1.5, 1])),
        v2("shape [3, 1] for 2 values", v2_with("distance", shape=[3, 1])),
        v2("shape missing", v2_with("distance", shape=None)),
        v2("inputs with different rows", v2_with("distance", shape=[1, 1], data=[10.0])),
    ],
    "wrong-datatypes": [
        v2("numeric input as BYTES", v2_with("distance", datatype="BYTES")),
        v2("string input as FP32", v2_with("carrier", datatype="FP32")),
        v2("datatype FOO", v2_with("distance", datatype="FOO")),
        v2("datatype a number", v2_with("distance", datatype=7)),
        v2("datatype missing", v2_with("distance", datatype=None)),
        v2("datatype BOOL", v2_with("distance", datatype="BOOL", data=[True, False])),
        v2("datatype lower case", v2_with("distance", datatype="fp32"), HANDLED),
        v2("datatype INT64 with floats", v2_with("distance", datatype="INT64"), HANDLED),
        v2("numbers as strings", v2_with("distance", data=["12.5", "10"])),
        v2("booleans for numbers", v2_with("distance", data=[True, False])),
        v2("a boolean among numbers", v2_with("distance", data=[True, 10.0])),
        v2("numbers for strings", v2_with("carrier", data=[1, 2])),
        v2("null in a required input", v2_with("distance", data=[None, 10.0])),
        v2("name a number", v2_with("distance", name=5)),
        v2("id a number", {**v2_body(), "id": 5}, HANDLED),
        v2("outputs a string", {**v2_body(), "outputs": "probability"}, HANDLED),
        v2("outputs of junk", {**v2_body(), "outputs": [{"name": 5, "parameters": "x"}]}, HANDLED),
        v2("parameters a list", {**v2_body(), "parameters": []}, HANDLED),
        v2(
            "binary_data_output 'yes'",
            {**v2_body(), "parameters": {"binary_data_output": "y"}},
            HANDLED,
        ),
        v1("string for a number", v1_with(0, "distance", "far")),
        v1("number for a string", v1_with(0, "carrier", 7)),
        v1("boolean for a number", v1_with(0, "distance", True)),
        v1("null for a required field", v1_with(0, "distance", None)),
    ],
    "non-scalar-values": [
        v2("list inside a numeric row", v2_with("distance", data=[1.0, [2.0]])),
        v2("ragged nested rows", v2_with("distance", data=[[1.0], [2.0, 3.0]])),
        v2("objects as values", v2_with("distance", data=[{"a": 1}, {"b": 2}])),
        v2("doubly nested strings", v2_with("carrier", data=[[["UA"]], [["AA"]]])),
        v2("data an object", v2_with("distance", data={"0": 1.0})),
        v2("data a scalar", v2_with("distance", data=1.0)),
        v2("data missing", v2_with("distance", data=None)),
        v2("name a list", v2_with("distance", name=["distance"])),
        v2("inputs an object", {"inputs": {t["name"]: t for t in v2_inputs()}}),
        v2("inputs of lists", {"inputs": [[t["name"], t["data"]] for t in v2_inputs()]}),
        v2("nested by shape (valid)", v2_with("carrier", data=[["MQ"], ["UA"]]), ONLY_200),
        v1("list for a number", v1_with(0, "distance", [1, 2])),
        v1("object for a string", v1_with(0, "carrier", {"x": 1})),
        v1("instances an object", {"instances": {"distance": 1.0}}),
    ],
    "uneven-v1-rows": [
        v1("lists of unequal length", {"instances": [[1, 2, 3], [1, 2]]}),
        v1("a row without a feature", {"instances": [FIRST_ROW, without(SECOND_ROW, "distance")]}),
        v1(
            "a row with an extra feature",
            {"instances": [FIRST_ROW, SECOND_ROW | {"colour": "red"}]},
        ),
        v1("an object row and a list row", {"instances": [FIRST_ROW, list(SECOND_ROW.values())]}),
        v1("no rows", {"instances": []}),
        v1("a null row", {"instances": [None]}),
        v1("rows of scalars", {"instances": [1.0, 2.0]}),
        v1("inputs instead of instances", {"inputs": v1_body()["instances"]}, HANDLED),
        v1("more rows than max_batch_rows", v1_body(MANY_ROWS), ONLY_413),
    ],
    "oversized": [
        v2("over the limit, Content-Length", padded(v2_body(), PADDING), ONLY_413),
        v2("over the limit, chunked", chunks(padded(v2_body(), PADDING)), ONLY_413),
        v2("under the limit, chunked (valid)", chunks(padded(v2_body(), UNDER_LIMIT)), ONLY_200),
        v2("more rows than max_batch_rows", v2_body(MANY_ROWS), ONLY_413),
        v2("a 100 kB category", v2_with("carrier", data=["U" * 100_000, "UA"])),
        v1("over the limit, Content-Length", padded(v1_body(), PADDING), ONLY_413),
        v1("over the limit, chunked", chunks(padded(v1_body(), PADDING)), ONLY_413),
        v1("under the limit, chunked (valid)", chunks(padded(v1_body(), UNDER_LIMIT)), ONLY_200),
        post(
            "v1 explain over the limit, chunked",
            f"/v1/models/{NAME}:explain",
            chunks(padded(v1_body(), PADDING)),
            frozenset({404, 413, 501}),
        ),
    ],
    "binary-tensors": [
        binary_case("valid", expect=ONLY_200),
        binary_case("valid, binary output", _binary_output, expect=ONLY_200),
        binary_case("header length not a number", header_length="abc"),
        binary_case("header length negative", header_length="-5"),
        binary_case("header length 0", header_length="0"),
        binary_case("header length past the body", header_length="99999999"),
        binary_case("header length 400 digits", header_length=NINES),
        binary_case("header length cuts the JSON", header_length="40"),
        binary_case("header length missing", header_length=""),
        binary_case("FP32 tensor of 7 bytes", _blob(DISTANCE, b"\x00" * 7)),
        binary_case("3 FP32 values for shape [2, 1]", _blob(DISTANCE, f32(1, 1, 1))),
        binary_case("1 FP32 value for shape [2, 1]", _blob(DISTANCE, f32(1))),
        binary_case("binary_data_size past the payload", _size(DISTANCE, 10_000)),
        binary_case("binary_data_size negative", _size(DISTANCE, -8)),
        binary_case("binary_data_size a string", _size(DISTANCE, "8")),
        binary_case("binary_data_size a float", _size(DISTANCE, 8.0)),
        binary_case("binary_data_size 400 digits", _size(DISTANCE, 10**400)),
        binary_case("unclaimed trailing bytes", tail=b"\x00" * 12),
        binary_case("BYTES length past the end", _blob(CARRIER, strings(b"UA", b"AA", lie=500))),
        binary_case("BYTES length prefix truncated", _blob(CARRIER, strings(b"UA") + b"\x02\x00")),
        binary_case("BYTES element not UTF-8", _blob(CARRIER, strings(b"\xff\xfe", b"UA"))),
        binary_case("FP64 bytes declared FP32", _blob(DISTANCE, np.ones(2, "<f8").tobytes())),
        binary_case(
            "FP64 datatype, 8-byte values",
            _both(_blob(DISTANCE, np.full(2, 10.0, "<f8").tobytes()), _declared(DISTANCE, "FP64")),
            expect=HANDLED,
        ),
        binary_case("BYTES tensor declared FP32", _declared(CARRIER, "FP32")),
        binary_case("NaN bytes in a required input", _blob(DISTANCE, f32(math.nan, math.nan))),
        binary_case("Inf bytes", _blob(DISTANCE, f32(math.inf, math.inf))),
        v1("with an Inference-Header-Content-Length", VALID_V1, HANDLED, **{HEADER_LENGTH: "10"}),
    ],
    "unknown-routes": [
        HttpCase("GET /nope", "GET", "/nope", expect=NOT_FOUND),
        post("unknown model, V2", "/v2/models/other-model/infer", v2_body(), NOT_FOUND),
        post("unknown model, V1", "/v1/models/other-model:predict", v1_body(), NOT_FOUND),
        HttpCase("metadata of an unknown model", "GET", "/v2/models/other-model", expect=NOT_FOUND),
        HttpCase(
            "unknown version ready", "GET", f"/v2/models/{NAME}/versions/9/ready", expect=HANDLED
        ),
        post("versioned infer", f"/v2/models/{NAME}/versions/7/infer", v2_body(), HANDLED),
        post("V1 explain", f"/v1/models/{NAME}:explain", v1_body(), HANDLED),
        HttpCase("DELETE infer", "DELETE", V2, expect=NOT_ALLOWED),
        HttpCase("PUT predict", "PUT", V1, VALID_V1, expect=NOT_ALLOWED),
        HttpCase("GET infer", "GET", V2, expect=NOT_ALLOWED),
        HttpCase("OPTIONS infer", "OPTIONS", V2, expect=HANDLED),
        HttpCase("POST health", "POST", "/v2/health/ready", b"{}", expect=NOT_ALLOWED),
        HttpCase("encoded traversal", "GET", "/v2/models/%2e%2e%2f%2e%2e%2fetc", expect=NOT_FOUND),
        HttpCase("NUL in the path", "GET", f"/v2/models/{NAME}%00", expect=NOT_FOUND),
        HttpCase("an 8,000-character path", "GET", "/v2/models/" + "m" * 8000, expect=HANDLED),
        HttpCase("GET /router/nope", "GET", "/router/nope", expect=NOT_FOUND),
        HttpCase("HEAD /", "HEAD", "/", expect=HANDLED),
        HttpCase("GET /metrics", "GET", "/metrics", expect=HANDLED),
    ],
}

#: Last of the HTTP cases: kserve's repository extension would unload the only model.
REPOSITORY: list[HttpCase] = [
    HttpCase("GET index", "GET", "/v2/repository/index", expect=NOT_SERVED),
    HttpCase("POST index", "POST", "/v2/repository/index", b"{}", expect=NOT_SERVED),
    *(
        HttpCase(
            f"{verb} {which}",
            "POST",
            f"/v2/repository/models/{model}/{verb}",
            b"{}",
            (),
            NOT_SERVED,
        )
        for model, which in (("other-model", "another model"), (NAME, "the model"))
        for verb in ("load", "unload")
    ),
]


def send(
    client: httpx.Client, case: HttpCase, headers: dict[str, str] | None = None
) -> tuple[int | str, bytes]:
    content: Any = case.content
    if isinstance(content, tuple):
        content = iter(content)  # an iterator: httpx sends it chunked, without Content-Length
    try:
        response = client.request(
            case.method,
            case.path,
            content=content,
            headers={**dict(case.headers), **(headers or {})},
        )
    except httpx.HTTPError as exc:
        return f"no answer: {type(exc).__name__}", str(exc).encode()
    return response.status_code, response.content


def run_http_cases(
    ledger: FuzzLedger, client: httpx.Client, category: str, target: str, cases: list[HttpCase]
) -> list[Outcome]:
    outcomes = []
    for case in cases:
        status, body = send(client, case)
        problem = http_problem(status, case.expect) if isinstance(status, int) else "no answer"
        outcomes.append(
            ledger.record(Outcome(category, case.name, target, status, snippet(body), problem))
        )
    return outcomes


# -- valid requests before and after --------------------------------------------------------------


def valid_answers(serving: Serving, clients: dict[str, httpx.Client]) -> dict[str, Any]:
    """Probabilities of valid V2 JSON, V2 binary and V1 requests per target, and of gRPC."""
    answers: dict[str, Any] = {}
    for target, client in clients.items():
        v2 = client.post(V2, json=v2_body(ROWS))
        assert v2.status_code == 200, f"{target} V2: {v2.status_code} {snippet(v2.content)}"
        answers[f"{target} V2 JSON"] = v2.json()["outputs"][0]["data"]
        v1 = client.post(V1, json=v1_body(ROWS))
        assert v1.status_code == 200, f"{target} V1: {v1.status_code} {snippet(v1.content)}"
        answers[f"{target} V1"] = v1.json()["predictions"]
        header, raw = binary_v2(ROWS, _binary_output)
        binary = client.post(
            V2,
            content=header + raw,
            headers={"inference-header-content-length": str(len(header))},
        )
        assert binary.status_code == 200, f"{target} binary: {binary.status_code}"
        cut = int(binary.headers["inference-header-content-length"])
        answers[f"{target} V2 binary"] = np.frombuffer(binary.content[cut:], "<f4").tolist()
    answers["predictor gRPC"] = grpc_probabilities(serving.predictor.grpc_port)
    return answers


def grpc_probabilities(port: int) -> list[float]:
    import grpc
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = GRPCInferenceServiceStub(channel).ModelInfer(grpc_request(ROWS), timeout=10)
    return np.frombuffer(response.raw_output_contents[0], "<f4").tolist()


@pytest.fixture(scope="module")
def baseline(serving: Serving, clients: dict[str, httpx.Client]) -> dict[str, Any]:
    return valid_answers(serving, clients)


def test_valid_requests_answer_before_fuzzing(baseline):
    assert len(baseline["predictor V2 JSON"]) == len(ROWS)
    np.testing.assert_allclose(baseline["router V2 JSON"], baseline["predictor V2 JSON"])
    np.testing.assert_allclose(baseline["predictor V1"], baseline["predictor V2 JSON"], rtol=1e-6)
    np.testing.assert_allclose(baseline["predictor gRPC"], baseline["predictor V2 JSON"], rtol=1e-6)


# -- schemathesis over the predictor's OpenAPI ----------------------------------------------------


def _generated(strategy: Any, max_examples: int) -> list[Any]:
    cases: list[Any] = []

    @settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(case: Any) -> None:
        cases.append(case)

    with contextlib.suppress(Unsatisfiable):  # no negative case of an operation without input
        collect()
    return cases


def test_schemathesis_cases_from_the_predictor_openapi(serving, baseline, ledger):
    """Every operation of kserve's OpenAPI (the repository ones come last, by hand), positive
    cases for any and for this model's name and negative ones, to the predictor and through
    the router (which has no schema of its own: it forwards the same routes)."""
    import requests
    import schemathesis
    from schemathesis import GenerationMode

    api = schemathesis.openapi.from_url(f"{serving.base_url('predictor')}/openapi.json")
    outcomes = []
    sessions = {t: requests.Session() for t in TARGETS}
    operations = [result.ok() for result in api.get_all_operations()]
    assert any(op.path == "/v2/models/{model_name}/infer" for op in operations)
    for operation in operations:
        if operation.path.startswith("/v2/repository/"):
            continue  # state-changing: test_repository_routes_are_not_served, at the end
        named = {"model_name": NAME} if "{model_name}" in operation.path else None
        modes = [("any name", GenerationMode.POSITIVE, None)]
        if named:
            modes += [
                ("positive", GenerationMode.POSITIVE, named),
                ("negative", GenerationMode.NEGATIVE, named),
            ]
        else:
            modes.append(("negative", GenerationMode.NEGATIVE, None))
        for mode, generation_mode, path_parameters in modes:
            strategy = operation.as_strategy(
                generation_mode=generation_mode, path_parameters=path_parameters
            )
            for case in _generated(strategy, SCHEMATHESIS_EXAMPLES):
                for target in TARGETS:
                    outcomes.append(
                        ledger.record(_call(case, target, serving, sessions[target], mode))
                    )
    for session in sessions.values():
        session.close()
    assert len(outcomes) > 100
    assert_kept_contract(outcomes, "schemathesis")


def _call(case: Any, target: str, serving: Serving, session: Any, mode: str) -> Outcome:
    import requests

    category = f"schemathesis {case.operation.label}"
    try:
        response = case.call(base_url=serving.base_url(target), session=session, timeout=20)
    except (requests.ConnectionError, requests.Timeout) as exc:
        return Outcome(category, mode, target, "no answer", snippet(str(exc)), "no answer")
    except Exception as exc:  # requests refused to send it (a header it cannot encode)
        return Outcome(category, mode, target, "not sent", snippet(repr(exc)), None)
    problem = http_problem(response.status_code, HANDLED)
    body = snippet(response.content)
    if problem:
        with contextlib.suppress(Exception):  # curl cannot express every generated case
            body = f"{body}  | reproduce: {snippet(case.as_curl_command(), 400)}"
    return Outcome(category, mode, target, response.status_code, body, problem)


# -- feature-aware mutations of valid requests -------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["UA", "EWR", "NaN", "1e400", "", "\x00", "\ud7ff"]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
DATATYPES = st.sampled_from(["FP32", "FP64", "INT64", "UINT8", "BYTES", "BOOL", "fp32", "FP8", ""])


@st.composite
def mutated_v2(draw: st.DrawFn) -> dict[str, Any]:
    body = v2_body(ROWS[: draw(st.integers(1, 3))])
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(body["inputs"], list) or not body["inputs"]:
            break  # replaced by a "top" change
        tensor = draw(st.sampled_from(body["inputs"]))
        if not isinstance(tensor, dict):
            break
        what = draw(
            st.sampled_from(["data", "value", "shape", "datatype", "name", "drop", "extra", "top"])
        )
        if what == "data":
            tensor["data"] = draw(JSON_VALUES)
        elif what == "value" and isinstance(tensor.get("data"), list) and tensor["data"]:
            tensor["data"][draw(st.integers(0, len(tensor["data"]) - 1))] = draw(JSON_VALUES)
        elif what == "shape":
            tensor["shape"] = draw(
                st.lists(st.integers(-2, 2**64) | SCALARS, max_size=3) | JSON_VALUES
            )
        elif what == "datatype":
            tensor["datatype"] = draw(DATATYPES | JSON_VALUES)
        elif what == "name":
            tensor["name"] = draw(st.sampled_from(NAMES) | JSON_VALUES)
        elif what == "drop" and tensor:
            tensor.pop(draw(st.sampled_from(sorted(tensor))))
        elif what == "extra":
            tensor[draw(st.sampled_from(["parameters", "contents", "x"]))] = draw(JSON_VALUES)
        elif what == "top":
            body[draw(st.sampled_from(["id", "parameters", "outputs", "inputs"]))] = draw(
                JSON_VALUES
            )
    return body


@st.composite
def mutated_v1(draw: st.DrawFn) -> dict[str, Any]:
    body = v1_body(ROWS[: draw(st.integers(1, 3))])
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(body["instances"], list) or not body["instances"]:
            break  # replaced by a "top" change
        row = draw(st.sampled_from(body["instances"]))
        what = draw(st.sampled_from(["value", "drop", "extra", "row", "top"]))
        if what == "value" and isinstance(row, dict):
            row[draw(st.sampled_from(NAMES))] = draw(JSON_VALUES)
        elif what == "drop" and isinstance(row, dict):
            row.pop(draw(st.sampled_from(NAMES)), None)
        elif what == "extra" and isinstance(row, dict):
            row[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        elif what == "row":
            body["instances"][body["instances"].index(row)] = draw(JSON_VALUES)
        elif what == "top":
            body[draw(st.sampled_from(["instances", "inputs", "parameters"]))] = draw(JSON_VALUES)
    return body


@pytest.mark.parametrize(
    ("protocol", "path", "strategy"),
    [("V2", V2, mutated_v2()), ("V1", V1, mutated_v1())],
    ids=["V2", "V1"],
)
def test_mutations_of_valid_requests(clients, baseline, ledger, protocol, path, strategy):
    """Valid requests with 1-3 random changes (values, shapes, datatypes, names, keys), sent
    with NaN/Infinity tokens and big integers as Python's json writes them."""
    category = f"mutated {protocol}"
    outcomes = []
    for body in _generated(strategy, MUTATION_EXAMPLES):
        payload = as_json(body)
        case = HttpCase(snippet(payload, 160), "POST", path, payload, expect=HANDLED)
        for target in TARGETS:
            outcomes += run_http_cases(ledger, clients[target], category, target, [case])
    assert len(outcomes) > MUTATION_EXAMPLES
    assert_kept_contract(outcomes, category)


# -- hand-written cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("category", list(HAND_WRITTEN))
def test_hand_written_cases(clients, baseline, ledger, category, target):
    outcomes = run_http_cases(ledger, clients[target], category, target, HAND_WRITTEN[category])
    assert_kept_contract(outcomes, f"{category!r} to the {target}")


def test_router_control_routes_keep_the_contract(serving, clients, baseline, ledger):
    """Malformed bodies to the router's own routes (with the admin token), and the same
    routes without it: never a 5xx."""
    client = clients["router"]
    token = bearer(admin_token(serving.settings))
    for request_id in ("fuzz-feedback-1", "fuzz-feedback-2"):
        response = client.post(V2, json=v2_body(ROWS[:1]), headers={"x-request-id": request_id})
        assert response.status_code == 200, snippet(response.content)
    cases = [
        post(
            "drain: timeout a string",
            "/router/drain",
            {"slot": "stable", "timeout": "soon"},
            HANDLED,
        ),
        post("drain: slot a list", "/router/drain", {"slot": ["stable"]}),
        post("drain: slot unknown", "/router/drain", {"slot": "blue"}),
        post("drain: body an array", "/router/drain", b"[1]"),
        post(
            "drain: timeout NaN",
            "/router/drain",
            spliced({"slot": "canary", "timeout": "<t>"}, t="NaN"),
            HANDLED,
        ),
        post("feedback: not a list", "/router/feedback", {"feedback": "x"}),
        post(
            "feedback: labels of strings",
            "/router/feedback",
            {"feedback": [{"request_id": "fuzz-feedback-1", "labels": ["a"]}]},
            HANDLED,
        ),
        post(
            "feedback: labels of objects",
            "/router/feedback",
            {"feedback": [{"request_id": "fuzz-feedback-2", "labels": [{"y": 1}]}]},
            HANDLED,
        ),
        post(
            "feedback: unknown request id",
            "/router/feedback",
            {"feedback": [{"request_id": "nope", "labels": [1]}]},
            HANDLED,
        ),
        post(
            "feedback: request id an object",
            "/router/feedback",
            {"feedback": [{"request_id": {"a": 1}, "labels": [1]}]},
            HANDLED,
        ),
        post(
            "feedback: nested 2000 levels",
            "/router/feedback",
            spliced({"feedback": "<f>"}, f=nested(2000)),
            HANDLED,
        ),
        post("reload: not JSON", "/router/reload", b"not json", HANDLED),
        HttpCase("DELETE status", "DELETE", "/router/status", expect=HANDLED),
    ]
    outcomes = []
    for case in cases:
        status, body = send(client, case, token)
        problem = http_problem(status, case.expect) if isinstance(status, int) else "no answer"
        outcomes.append(
            ledger.record(
                Outcome("router control", case.name, "router", status, snippet(body), problem)
            )
        )
    unauthenticated = [
        post("drain without a token", "/router/drain", {"slot": "canary"}, HANDLED),
        post("feedback without a token", "/router/feedback", {"feedback": []}, HANDLED),
    ]
    outcomes += run_http_cases(ledger, client, "router control", "router", unauthenticated)
    assert_kept_contract(outcomes, "the router's control routes")


# -- gRPC -----------------------------------------------------------------------------------------


def grpc_request(
    rows: list[dict[str, Any]] = ROWS[:2], override: Callable[[Any], None] | None = None
) -> Any:
    """A valid ModelInferRequest, or one changed in place by ``override``."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    tensors = []
    for f in FEATURES:
        values = [r[f.name] for r in rows]
        if f.kind == "numeric":
            contents = pb.InferTensorContents(
                fp32_contents=[math.nan if v is None else v for v in values]
            )
        else:
            contents = pb.InferTensorContents(
                bytes_contents=[("" if v is None else v).encode() for v in values]
            )
        tensors.append(
            pb.ModelInferRequest.InferInputTensor(
                name=f.name, datatype=f.v2_datatype, shape=[len(rows), 1], contents=contents
            )
        )
    request = pb.ModelInferRequest(model_name=NAME, id="fuzz-grpc", inputs=tensors)
    if override is not None:
        override(request)
    return request


def _input(request: Any, name: str) -> Any:
    return request.inputs[NAMES.index(name)]


def _raw_inputs(request: Any, distance_bytes: bytes | None = None) -> None:
    """Move every tensor to raw_input_contents (optionally with other distance bytes)."""
    for tensor in request.inputs:
        if tensor.datatype == "FP32":
            raw = f32(*tensor.contents.fp32_contents)
        else:
            raw = strings(*tensor.contents.bytes_contents)
        if tensor.name == "distance" and distance_bytes is not None:
            raw = distance_bytes
        request.raw_input_contents.append(raw)
        tensor.ClearField("contents")


def _contents(name: str, kind: str, *values: Any) -> Callable[[Any], None]:
    def override(request: Any) -> None:
        tensor = _input(request, name)
        tensor.ClearField("contents")
        getattr(tensor.contents, kind).extend(values)

    return override


def _datatype(name: str, datatype: str) -> Callable[[Any], None]:
    def override(request: Any) -> None:
        _input(request, name).datatype = datatype

    return override


def _shape(name: str, *dims: int) -> Callable[[Any], None]:
    def override(request: Any) -> None:
        tensor = _input(request, name)
        del tensor.shape[:]
        tensor.shape.extend(dims)

    return override


def _duplicate(request: Any) -> None:
    request.inputs.append(request.inputs[0])


def _rename_first(request: Any) -> None:
    request.inputs[0].name = "colour"


def _drop_last(request: Any) -> None:
    del request.inputs[-1]


def _raw_and_contents(request: Any) -> None:
    request.raw_input_contents.append(b"\x00" * 8)


def _raw_short(request: Any) -> None:
    _raw_inputs(request)
    del request.raw_input_contents[-1]


def _raw_bytes_overrun(request: Any) -> None:
    _raw_inputs(request)
    request.raw_input_contents[CARRIER] = strings(b"UA", lie=900)


def _junk_parameters(request: Any) -> None:
    request.parameters["binary_data_output"].string_param = "yes"


@dataclass(frozen=True)
class GrpcCase:
    """One gRPC call: ``rpc`` of the inference service with ``request()``."""

    name: str
    request: Callable[[], Any]
    rpc: str = "ModelInfer"
    expect: frozenset[str] = GRPC_REJECTED


def infer(
    name: str, override: Callable[[Any], None], expect: frozenset[str] = GRPC_REJECTED
) -> GrpcCase:
    return GrpcCase(name, lambda: grpc_request(override=override), expect=expect)


def grpc_cases() -> list[GrpcCase]:
    """Malformed gRPC requests: each must be INVALID_ARGUMENT or another client-fault code."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    def other_model() -> Any:
        return pb.ModelInferRequest(model_name="other-model", inputs=grpc_request().inputs)

    return [
        GrpcCase("empty request", pb.ModelInferRequest),
        GrpcCase("unknown model", other_model),
        GrpcCase("no inputs", lambda: pb.ModelInferRequest(model_name=NAME)),
        infer("an input missing", _drop_last),
        infer("an input twice", _duplicate),
        infer("an unknown input", _rename_first),
        infer("numeric input as BYTES", _datatype("distance", "BYTES")),
        infer("string input as FP32", _datatype("carrier", "FP32")),
        infer("datatype FOO", _datatype("distance", "FOO")),
        infer("datatype empty", _datatype("distance", "")),
        infer("shape [3, 1] for 2 values", _shape("distance", 3, 1)),
        infer("shape [2, 2]", _shape("distance", 2, 2)),
        infer("shape [-1, 1]", _shape("distance", -1, 1)),
        infer("shape []", _shape("distance")),
        infer("shape [2**62, 1]", _shape("distance", 2**62, 1)),
        infer("int64 contents for FP32", _contents("distance", "int64_contents", 10, 20)),
        infer("no contents", _contents("distance", "fp32_contents")),
        infer("NaN in a required input", _contents("distance", "fp32_contents", math.nan, 10)),
        infer("Infinity", _contents("wind_gust", "fp32_contents", math.inf, 1.0)),
        infer("out of range", _contents("distance", "fp32_contents", 10.0, 99999.0)),
        infer("string not UTF-8", _contents("carrier", "bytes_contents", b"\xff\xfe", b"UA")),
        infer("10,000 characters", _contents("carrier", "bytes_contents", b"U" * 10_000, b"UA")),
        infer(
            "message over the size limit", _contents("carrier", "bytes_contents", PADDING.encode())
        ),
        infer("raw FP32 of 7 bytes", lambda r: _raw_inputs(r, b"\x00" * 7)),
        infer("raw FP32 of 3 values", lambda r: _raw_inputs(r, f32(1, 1, 1))),
        infer("raw BYTES length past the end", _raw_bytes_overrun),
        infer("fewer raw contents than inputs", _raw_short),
        infer("raw and typed contents together", _raw_and_contents),
        infer("binary_data_output a string", _junk_parameters, GRPC_REJECTED | {"OK"}),
        GrpcCase(
            "metadata of an unknown model",
            lambda: pb.ModelMetadataRequest(name="x"),
            "ModelMetadata",
        ),
        GrpcCase(
            "ready of an unknown model",
            lambda: pb.ModelReadyRequest(name="x"),
            "ModelReady",
            GRPC_REJECTED | {"OK"},
        ),
    ]


def _grpc_outcomes(
    ledger: FuzzLedger, port: int, category: str, cases: list[GrpcCase]
) -> list[Outcome]:
    import grpc
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    outcomes = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        for case in cases:
            try:
                getattr(stub, case.rpc)(case.request(), timeout=10)
                code, details = "OK", ""
            except grpc.RpcError as exc:
                code, details = exc.code().name, exc.details() or ""
            problem = None if code in case.expect else f"want {'/'.join(sorted(case.expect))}"
            outcome = Outcome(category, case.name, "grpc", code, snippet(details), problem)
            outcomes.append(ledger.record(outcome))
    return outcomes


def test_malformed_grpc_requests_are_invalid_argument(serving, baseline, ledger):
    outcomes = _grpc_outcomes(ledger, serving.predictor.grpc_port, "grpc", grpc_cases())
    assert_kept_contract(outcomes, "gRPC")


# -- kserve's repository extension (state-changing: last) -----------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_repository_routes_are_not_served(clients, baseline, ledger, target):
    outcomes = run_http_cases(ledger, clients[target], "repository", target, REPOSITORY)
    assert_kept_contract(outcomes, f"the repository routes to the {target}")


def test_grpc_repository_rpcs_are_not_served(serving, baseline, ledger):
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    refused = frozenset({"NOT_FOUND", "UNIMPLEMENTED"})
    cases = [
        GrpcCase(
            f"{verb} {which}",
            lambda request=request, model=model: request(model_name=model),
            f"RepositoryModel{verb.title()}",
            refused,
        )
        for model, which in (("other-model", "another model"), (NAME, "the model"))
        for verb, request in (
            ("load", pb.RepositoryModelLoadRequest),
            ("unload", pb.RepositoryModelUnloadRequest),
        )
    ]
    outcomes = _grpc_outcomes(ledger, serving.predictor.grpc_port, "grpc repository", cases)
    assert_kept_contract(outcomes, "the gRPC repository RPCs")


# -- afterwards -----------------------------------------------------------------------------------


def test_after_fuzzing_valid_requests_answer_identically(serving, clients, baseline, ledger):
    """Both processes live, valid requests answer as before, and the router's error count
    for the slot is 0: a client's bad input is never held against the model."""
    stable = serving.deployment.stable
    assert stable is not None
    processes = {
        "the predictor": serving.predictor.pid,
        "the router": serving.deployment.router_pid,
        "the deployment's predictor": stable.pid,
    }
    dead = [what for what, pid in processes.items() if not pid_alive(pid)]
    logs = serving.settings.home / "serving" / "logs"
    assert not dead, f"{', '.join(dead)} died during the fuzzing (logs: {logs})"
    after = valid_answers(serving, clients)
    changed = {
        key: (before, after[key]) for key, before in baseline.items() if after[key] != before
    }
    assert not changed, f"valid requests answer differently after the fuzzing: {changed}"
    status = clients["router"].get("/router/status").json()
    errors = {slot: count for slot, count in status["errors"].items() if count}
    if errors:
        server_errors = [
            f"{o.category} / {o.case}: {o.status}"
            for o in ledger.outcomes
            if o.target == "router" and o.problem == "server error"
        ]
        pytest.fail(
            f"the router counted model errors {errors} (of {status['requests']} requests); "
            f"its answers >= 500: {'; '.join(server_errors) or 'none'}",
            pytrace=False,
        )
