"""The local traffic router: admin token on control routes, validation, the idempotency key,
the forwarding allow-list and body limit, error accounting, health-aware routing and the
failover wait (real predictor processes killed and restarted on the same port).

Most tests run the router in-process (aiohttp's test server) in front of tiny aiohttp
predictors whose answers the test chooses; the failover and start-up tests run the real
``python -m e2eai.serving.router`` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from onnx_fixtures import build_onnx_model, feature_rows

from e2eai.auth import TOKEN_ENV, bearer
from e2eai.serving.processes import free_port, stop_process, wait_until_ready
from e2eai.serving.router import build_app
from e2eai.serving.state import Backend, ServingState, write_state
from e2eai.tasks.flights import schema

NAME = "flight-delay"
INFER = f"/v2/models/{NAME}/infer"
TOKEN = "router-test-token"
ADMIN = bearer(TOKEN)


class FakePredictor:
    """A predictor whose health and answers the test sets; it records every request."""

    def __init__(self, name: str, keepalive_timeout: float = 75.0) -> None:
        self.name = name
        self.ready_status = 200
        self.infer_status = 200
        self.probability = 0.25  # every row's answer
        self.delay = 0.0  # seconds before each inference answers
        self.hits: list[tuple[str, str]] = []
        self.last_headers: dict[str, str] = {}
        app = web.Application()
        app.router.add_get("/v2/health/ready", self._ready)
        app.router.add_post(INFER, self._infer)
        app.router.add_get("/metrics", self._chunked)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self.server = TestServer(app, keepalive_timeout=keepalive_timeout)

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    @property
    def inferences(self) -> int:
        return sum(1 for method, path in self.hits if path == INFER)

    async def _ready(self, _: web.Request) -> web.Response:
        return web.json_response({"ready": self.ready_status == 200}, status=self.ready_status)

    async def _infer(self, request: web.Request) -> web.Response:
        self.hits.append((request.method, request.path))
        self.last_headers = dict(request.headers)
        body = await request.json()
        await asyncio.sleep(self.delay)
        status = body.get("status", self.infer_status)
        if status != 200:
            return web.json_response({"error": f"{self.name} says {status}"}, status=status)
        rows = body.get("rows", 1)
        output = {"name": "probability", "datatype": "FP32", "shape": [rows]}
        response = web.json_response(
            {
                "model_name": NAME,
                "outputs": [{**output, "data": [self.probability] * rows}],
                "by": self.name,
            }
        )
        if body.get("close"):
            response.force_close()  # answers with Connection: close
        return response

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.method, request.path))
        response = web.StreamResponse(headers={"content-type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(10):
            await response.write(f"metric_{i} {i}\n".encode() * 100)
        await response.write_eof()
        return response

    async def _other(self, request: web.Request) -> web.Response:
        self.hits.append((request.method, request.path))
        return web.json_response({"path": request.path, "by": self.name})


def _backend(slot: str, port: int, weight: int, pid: int = 1) -> Backend:
    return Backend(
        slot=slot,
        version=slot,
        model_path="model.onnx",
        http_port=port,
        grpc_port=0,
        pid=pid,
        weight=weight,
    )


def _write_state(path: Path, backends: list[Backend], router_port: int = 0) -> None:
    slots = {b.slot: b for b in backends}
    state = ServingState(
        model_name=NAME, host="127.0.0.1", router_port=router_port, router_pid=0, **slots
    )
    write_state(path, state)


@contextlib.asynccontextmanager
async def deployment(
    tmp_path: Path, weights: dict[str, int], keepalive_timeout: float = 75.0, **router_kw: Any
) -> AsyncIterator[tuple[TestClient, dict[str, FakePredictor]]]:
    """Fake predictors for ``weights`` ({slot: weight}) behind an in-process router."""
    fakes = {slot: FakePredictor(slot, keepalive_timeout) for slot in weights}
    for fake in fakes.values():
        await fake.server.start_server()
    state_file = tmp_path / "state.json"
    _write_state(state_file, [_backend(s, fakes[s].port, w) for s, w in weights.items()])
    router_kw.setdefault("health_interval", 0.05)
    app = build_app(state_file, admin_token=TOKEN, **router_kw)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, fakes
    finally:
        await client.close()
        for fake in fakes.values():
            await fake.server.close()


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _health(client: TestClient, slot: str) -> bool:
    status = await (await client.get("/router/status")).json()
    return next(b["healthy"] for b in status["backends"] if b["slot"] == slot)


async def _samples(client: TestClient) -> dict[str, Any]:
    response = await client.get("/router/samples", headers=ADMIN)
    assert response.status == 200
    return await response.json()


# -- the admin token and control-route validation (findings 8, 9, 10) ---------------------------


@pytest.mark.asyncio
async def test_control_routes_need_the_admin_token(tmp_path):
    async with deployment(tmp_path, {"stable": 100}) as (client, _):
        assert (await client.post(INFER, json={})).status == 200
        calls = [
            ("POST", "/router/reload", {"reset_samples": True}),
            ("POST", "/router/drain", {"slot": "stable"}),
            ("POST", "/router/feedback", {"feedback": []}),
            ("GET", "/router/samples", None),
        ]
        for headers in (
            {},
            bearer("wrong"),
            {"Authorization": TOKEN},
            {"Authorization": "Basic x"},
        ):
            for method, path, body in calls:
                response = await client.request(method, path, json=body, headers=headers)
                assert response.status == 401, (path, headers)
                answer = await response.text()
                assert "error" in await response.json() and TOKEN not in answer
        # The unauthenticated reset wiped nothing.
        assert (await _samples(client))["stable"]["requests"] == 1
        status = await client.get("/router/status")  # open: readiness checks read it
        assert status.status == 200 and TOKEN not in await status.text()
        for method, path, body in calls:
            response = await client.request(method, path, json=body, headers=ADMIN)
            assert response.status == 200, (path, await response.text())
        assert (await _samples(client))["stable"]["requests"] == 0  # the reset, with the token


@pytest.mark.asyncio
async def test_control_routes_answer_400_naming_the_field_never_500(tmp_path):
    async with deployment(tmp_path, {"stable": 100}) as (client, _):
        bad = {
            "/router/drain": [
                ({"slot": "stable", "timeout": "abc"}, "timeout"),
                ({"slot": ["stable"]}, "slot"),
                ({"slot": {"a": 1}}, "slot"),
                ({"slot": "other"}, "slot"),
                ({}, "slot"),
                ({"slot": "stable", "timeout": -1}, "timeout"),
                ({"slot": "stable", "timeout": 301}, "timeout"),
                ({"slot": "stable", "timeout": True}, "timeout"),
                ({"slot": "stable", "timeout": None}, "timeout"),
            ],
            "/router/reload": [({"reset_samples": "yes"}, "reset_samples")],
            "/router/feedback": [
                ({}, "feedback"),
                ({"feedback": {"request_id": "a"}}, "feedback"),
                ({"feedback": ["a"]}, "feedback[0]"),
                ({"feedback": [{"request_id": 3, "labels": [1]}]}, "feedback[0].request_id"),
                ({"feedback": [{"request_id": "a", "labels": "1"}]}, "feedback[0].labels"),
                (
                    {"feedback": [{"request_id": "a", "labels": [1], "rows": [-1]}]},
                    "feedback[0].rows",
                ),
                (
                    {"feedback": [{"request_id": "a", "labels": [1], "rows": "0"}]},
                    "feedback[0].rows",
                ),
            ],
        }
        for path, cases in bad.items():
            for body, field in cases:
                response = await client.post(path, json=body, headers=ADMIN)
                assert response.status == 400, (path, body, response.status)
                assert field in (await response.json())["error"], (path, body)
            for raw in (b"{not json", b"[1, 2]", b'"text"', b"1e999", b'{"slot": 1e999}'):
                response = await client.post(
                    path, data=raw, headers={**ADMIN, "content-type": "application/json"}
                )
                assert response.status == 400, (path, raw, response.status)
        drained = await client.post(
            "/router/drain", json={"slot": "canary", "timeout": 0.5}, headers=ADMIN
        )
        assert drained.status == 200 and (await drained.json())["inflight"] == 0


@pytest.mark.asyncio
async def test_feedback_only_for_answered_ids_once_each_with_valid_labels(tmp_path):
    async with deployment(tmp_path, {"stable": 100}) as (client, _):
        for request_id, rows in (("a", 2), ("b", 1), ("c", 1), ("d", 3)):
            response = await client.post(
                INFER, json={"rows": rows}, headers={"x-request-id": request_id}
            )
            assert response.status == 200
        forged = {"feedback": [{"request_id": "a", "labels": [1, 1]}]}
        assert (await client.post("/router/feedback", json=forged)).status == 401
        feedback = [
            {"request_id": "a", "labels": [1, 0]},  # matched
            {"request_id": "a", "labels": [1, 0]},  # duplicate
            {"request_id": "nobody-asked", "labels": [1]},  # unknown
            {"request_id": "b", "labels": [1, 0]},  # invalid: the prediction has one row
            {"request_id": "c", "labels": [2]},  # invalid: not 0/1
            {"request_id": "d", "labels": [1, "0", 1]},  # invalid: not 0/1
        ]
        response = await client.post("/router/feedback", json={"feedback": feedback}, headers=ADMIN)
        assert response.status == 200
        assert await response.json() == {
            "matched": 1,
            "received": 6,
            "unknown": 1,
            "duplicate": 1,
            "invalid": 3,
        }
        again = [{"request_id": "a", "labels": [0, 0]}, {"request_id": "b", "labels": [0]}]
        response = await client.post("/router/feedback", json={"feedback": again}, headers=ADMIN)
        counts = await response.json()
        assert (counts["matched"], counts["duplicate"]) == (1, 1)  # b once its labels fit
        assert (await _samples(client))["stable"]["scored"] == [[0.25, 1], [0.25, 0], [0.25, 0]]


@pytest.mark.asyncio
async def test_a_batchs_rows_are_labelled_one_by_one(tmp_path):
    """A batch answered under one request id gets its labels row by row, as outcomes arrive:
    each row once, rows outside the batch or labels that do not match refused."""
    async with deployment(tmp_path, {"stable": 100}) as (client, _):
        response = await client.post(INFER, json={"rows": 3}, headers={"x-request-id": "batch"})
        assert response.status == 200

        async def send(*items):
            answer = await client.post(
                "/router/feedback", json={"feedback": list(items)}, headers=ADMIN
            )
            assert answer.status == 200
            return await answer.json()

        counts = await send(
            {"request_id": "batch", "labels": [1], "rows": [2]},  # matched
            {"request_id": "batch", "labels": [1], "rows": [2]},  # duplicate
            {"request_id": "batch", "labels": [0], "rows": [3]},  # invalid: no row 3
            {"request_id": "batch", "labels": [0, 1], "rows": [0]},  # invalid: 2 labels, 1 row
            {"request_id": "batch", "labels": [0, 1], "rows": [0, 0]},  # invalid: row twice
        )
        assert (counts["matched"], counts["duplicate"], counts["invalid"]) == (1, 1, 3)
        # The rest of the batch at once: only the rows not labelled yet count.
        assert (await send({"request_id": "batch", "labels": [0, 0, 1]}))["matched"] == 1
        assert (await _samples(client))["stable"]["scored"] == [[0.25, 1], [0.25, 0], [0.25, 0]]
        assert (await send({"request_id": "batch", "labels": [0], "rows": [1]}))["duplicate"] == 1


# -- shadow scoring: both slots score every prediction, feedback pairs them ----------------------


async def _shadowed_traffic(client: TestClient, requests: int, rows: int = 2) -> dict[str, str]:
    """``requests`` inferences with ids; {request id: the slot that answered}."""
    answered = {}
    for i in range(requests):
        response = await client.post(INFER, json={"rows": rows}, headers={"x-request-id": f"r{i}"})
        assert response.status == 200
        answered[f"r{i}"] = (await response.json())["by"]
    return answered


async def _label_all(client: TestClient, answered: dict[str, str], rows: int = 2) -> list[int]:
    labels = [i % 2 for i in range(len(answered) * rows)]
    feedback = [
        {"request_id": rid, "labels": labels[k * rows : (k + 1) * rows]}
        for k, rid in enumerate(answered)
    ]
    response = await client.post("/router/feedback", json={"feedback": feedback}, headers=ADMIN)
    assert (await response.json())["matched"] == len(answered)
    return labels


@pytest.mark.asyncio
async def test_shadow_scores_every_prediction_on_both_slots_and_pairs_its_labels(tmp_path):
    async with deployment(tmp_path, {"stable": 70, "canary": 30}, shadow=True) as (client, fakes):
        fakes["canary"].probability = 0.75
        answered = await _shadowed_traffic(client, 40)
        by_canary = sum(slot == "canary" for slot in answered.values())
        assert 0 < by_canary < 40  # the weight still decides who answers the client

        async def shadows_done() -> bool:
            return fakes["stable"].inferences == fakes["canary"].inferences == 40

        await _until(shadows_done)  # each slot scored every request: its own and the other's
        samples = await _samples(client)
        assert samples["canary"]["requests"] == by_canary  # only answers count for the slot
        assert samples["stable"]["requests"] == 40 - by_canary
        assert samples["stable"]["shadow_requests"] == by_canary
        assert samples["canary"]["shadow_requests"] == 40 - by_canary
        assert samples["stable"]["shadow_errors"] == samples["canary"]["shadow_errors"] == 0
        labels = await _label_all(client, answered)
        samples = await _samples(client)
        # Every labelled row paired (stable's probability, canary's, label), whoever answered.
        assert samples["paired"] == [[0.25, 0.75, y] for y in labels]
        assert len(samples["canary"]["scored"]) == 2 * by_canary  # the slots' own samples stay
        assert {tuple(row) for row in samples["canary"]["scored"]} <= {(0.75, 0), (0.75, 1)}


@pytest.mark.asyncio
async def test_a_label_waits_for_its_shadow_still_in_flight(tmp_path):
    async with deployment(tmp_path, {"stable": 100, "canary": 10}, shadow=True) as (client, fakes):
        fakes["canary"].probability, fakes["canary"].delay = 0.75, 0.3
        answered = await _shadowed_traffic(client, 6)
        assert "stable" in answered.values()  # 90 %: its canary shadows are slow
        labels = await _label_all(client, answered)  # right away: those are still in flight
        assert (await _samples(client))["paired"] == [[0.25, 0.75, y] for y in labels]


@pytest.mark.asyncio
async def test_a_failing_shadow_costs_the_client_nothing_and_pairs_nothing(tmp_path):
    async with deployment(tmp_path, {"stable": 100, "canary": 0}, shadow=True) as (client, fakes):
        # A canary at 0 % takes no shadows (a slot being drained); at 10 % and failing, its
        # shadows fail: counted as shadow errors, never seen by the client.
        await _label_all(client, await _shadowed_traffic(client, 5))
        assert fakes["canary"].inferences == 0 and (await _samples(client))["paired"] == []
    async with deployment(tmp_path, {"stable": 100, "canary": 10}, shadow=True) as (client, fakes):
        fakes["canary"].infer_status = 503
        answered = await _shadowed_traffic(client, 30)
        assert set(answered.values()) == {"stable"}  # a canary 503 is retried on stable

        async def shadows_done() -> bool:
            canary = (await _samples(client))["canary"]
            return canary["shadow_requests"] == canary["shadow_errors"] > 0

        await _until(shadows_done)
        await _label_all(client, answered)
        samples = await _samples(client)
        assert samples["paired"] == [] and len(samples["stable"]["scored"]) == 60


@pytest.mark.asyncio
async def test_without_shadow_each_slot_scores_only_its_own_requests(tmp_path):
    async with deployment(tmp_path, {"stable": 50, "canary": 50}) as (client, fakes):
        answered = await _shadowed_traffic(client, 20)
        await _label_all(client, answered)
        samples = await _samples(client)
        assert fakes["stable"].inferences + fakes["canary"].inferences == 20
        assert samples["paired"] == [] and samples["stable"]["shadow_requests"] == 0
        # Metadata and other routes are never shadowed, shadow on or off.
    async with deployment(tmp_path, {"stable": 50, "canary": 50}, shadow=True) as (client, fakes):
        assert (await client.get(f"/v2/models/{NAME}")).status == 200
        await asyncio.sleep(0.1)
        assert len(fakes["stable"].hits) + len(fakes["canary"].hits) == 1


# -- the idempotency key (finding 7) ------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_request_id_replays_only_the_same_request(tmp_path):
    async with deployment(tmp_path, {"stable": 100}) as (client, fakes):
        first = await client.post(INFER, json={"rows": 1}, headers={"x-request-id": "r1"})
        assert first.status == 200 and "x-e2eai-replayed" not in first.headers
        replay = await client.post(INFER, json={"rows": 1}, headers={"x-request-id": "r1"})
        assert replay.headers["x-e2eai-replayed"] == "1"
        assert await replay.read() == await first.read()
        assert fakes["stable"].inferences == 1
        other_body = await client.post(INFER, json={"rows": 2}, headers={"x-request-id": "r1"})
        assert other_body.status == 409
        assert "x-request-id" in (await other_body.json())["error"]
        metadata = await client.get(f"/v2/models/{NAME}", headers={"x-request-id": "r1"})
        assert metadata.status == 409  # never the cached prediction
        other_path = await client.post(
            f"/v2/models/{NAME}/versions/1/infer", json={"rows": 1}, headers={"x-request-id": "r1"}
        )
        assert other_path.status == 409
        fresh = await client.get(f"/v2/models/{NAME}", headers={"x-request-id": "g1"})
        assert fresh.status == 200 and (await fresh.json())["path"] == f"/v2/models/{NAME}"
        again = await client.get(f"/v2/models/{NAME}", headers={"x-request-id": "g1"})
        assert again.status == 200 and "x-e2eai-replayed" not in again.headers
        for _ in range(2):  # a failed inference is not cached: the retry is a new inference
            failed = await client.post(INFER, json={"status": 400}, headers={"x-request-id": "bad"})
            assert failed.status == 400
        assert fakes["stable"].inferences == 3
        assert len(fakes["stable"].hits) == 5  # two GETs forwarded, never from the cache


# -- the allow-list and the body limit (finding 11) -------------------------------------------


@pytest.mark.asyncio
async def test_only_the_models_inference_and_metadata_routes_are_forwarded(tmp_path):
    async with deployment(tmp_path, {"stable": 100}, max_body_bytes=2000) as (client, fakes):
        forwarded = [
            ("GET", "/v2"),
            ("GET", "/v2/health/live"),
            ("GET", "/v2/health/ready"),
            ("GET", f"/v2/models/{NAME}"),
            ("GET", f"/v2/models/{NAME}/ready"),
            ("POST", INFER),
            ("GET", f"/v2/models/{NAME}/versions/3"),
            ("POST", f"/v2/models/{NAME}/versions/3/infer"),
            ("GET", "/v1/models"),
            ("GET", f"/v1/models/{NAME}"),
            ("POST", f"/v1/models/{NAME}:predict"),
            ("GET", "/metrics"),
        ]
        for method, path in forwarded:
            response = await client.request(method, path, json={"rows": 1})
            assert response.status == 200, (method, path, response.status)
        refused = [
            ("POST", f"/v2/repository/models/{NAME}/unload"),
            ("POST", f"/v2/repository/models/{NAME}/load"),
            ("POST", "/v2/repository/index"),
            ("GET", "/v2/models/other-model"),
            ("POST", "/v2/models/other-model/infer"),
            ("POST", f"/v2/models/{NAME}"),  # a GET route
            ("DELETE", f"/v2/models/{NAME}"),
            ("GET", INFER),  # a POST route
            ("POST", f"/v2/models/{NAME}/infer/../../../repository/models/{NAME}/unload"),
            ("POST", f"/v2/models/{NAME}/versions/../infer"),
            ("POST", f"/v2/models/{NAME}%2Finfer"),
            ("GET", "/docs"),
            ("GET", "/"),
        ]
        hits = len(fakes["stable"].hits)
        for method, path in refused:
            status, answer = await _raw_request(client.port, method, path, b'{"rows": 1}')
            assert status == 404, (method, path, status)
            assert b'"error"' in answer
        assert len(fakes["stable"].hits) == hits  # none reached the predictor

        large = {"rows": 1, "padding": "x" * 3000}
        assert (await client.post(INFER, json=large)).status == 413

        async def chunked():
            for _ in range(4):
                yield b" " * 1000

        response = await client.post(
            INFER, data=chunked(), headers={"content-type": "application/json"}
        )
        assert response.status == 413
        assert len(fakes["stable"].hits) == hits
        assert (await client.post(INFER, json={"rows": 1, "padding": "x" * 1500})).status == 200


async def _raw_request(port: int, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """Send ``path`` exactly as written (HTTP clients normalise ``..`` away)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


# -- error accounting (finding 5) ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_errors_count_against_the_predictor_that_failed_and_retries_go_elsewhere(tmp_path):
    async with deployment(tmp_path, {"stable": 50, "canary": 50}) as (client, fakes):
        fakes["canary"].infer_status = 500
        slots = []
        for _ in range(60):
            response = await client.post(INFER, json={"rows": 1})
            assert response.status == 200
            slots.append(response.headers["x-e2eai-slot"])
        assert set(slots) == {"stable"}
        canary_attempts = fakes["canary"].inferences
        assert 10 < canary_attempts < 50 and fakes["stable"].inferences == 60
        for _ in range(5):  # the predictor's 4xx: the client's fault, answered as is
            response = await client.post(INFER, json={"status": 422})
            assert response.status == 422
        assert fakes["canary"].inferences + fakes["stable"].inferences == canary_attempts + 65
        samples = await _samples(client)
        stable, canary = samples["stable"], samples["canary"]
        assert canary["errors"] == canary["requests"] - canary["client_errors"]
        assert canary["errors"] == canary_attempts
        assert stable["errors"] == 0 and len(stable["latencies_ms"]) == 60
        assert stable["client_errors"] + canary["client_errors"] == 5

        # Both fail: each is tried once, and the client gets the predictor's own answer.
        fakes["stable"].infer_status = 503
        before = {s: fakes[s].inferences for s in fakes}
        response = await client.post(INFER, json={"rows": 1})
        assert response.status in {500, 503}
        assert (await response.json())["error"].endswith(f"says {response.status}")
        assert {s: fakes[s].inferences - before[s] for s in fakes} == {"stable": 1, "canary": 1}
        after = await _samples(client)
        assert after["stable"]["errors"] == 1
        assert after["canary"]["errors"] == canary_attempts + 1


# -- health-aware routing and the failover wait (finding 18) --------------------------------------


@pytest.mark.asyncio
async def test_an_unhealthy_predictor_gets_no_traffic_until_it_is_healthy_again(tmp_path):
    async with deployment(tmp_path, {"stable": 50, "canary": 50}) as (client, fakes):
        fakes["canary"].ready_status = 503  # still answers inferences: only health says no

        async def canary_unhealthy() -> bool:
            return not await _health(client, "canary")

        await _until(canary_unhealthy)
        await asyncio.sleep(0.2)  # a few more health rounds
        slots = [
            (await client.post(INFER, json={"rows": 1})).headers["x-e2eai-slot"] for _ in range(100)
        ]
        assert set(slots) == {"stable"} and fakes["canary"].inferences == 0
        assert (await _samples(client))["canary"]["requests"] == 0

        fakes["canary"].ready_status = 200

        async def canary_healthy() -> bool:
            return await _health(client, "canary")

        await _until(canary_healthy)
        slots = [
            (await client.post(INFER, json={"rows": 1})).headers["x-e2eai-slot"] for _ in range(100)
        ]
        assert 25 < slots.count("canary") < 75 and fakes["canary"].inferences == slots.count(
            "canary"
        )


@pytest.mark.asyncio
async def test_with_no_healthy_predictor_an_inference_waits_for_one(tmp_path):
    async with deployment(tmp_path, {"stable": 100}, failover_wait=0.6) as (client, fakes):
        fakes["stable"].ready_status = 503

        async def unhealthy() -> bool:
            return not await _health(client, "stable")

        await _until(unhealthy)
        started = time.monotonic()
        response = await client.post(INFER, json={"rows": 1})
        assert response.status == 503 and time.monotonic() - started >= 0.6
        assert fakes["stable"].inferences == 0
        assert (await client.get("/v2/health/ready")).status == 503  # reads do not wait

        async def recover() -> None:
            await asyncio.sleep(0.3)
            fakes["stable"].ready_status = 200

        recovery = asyncio.create_task(recover())
        response = await client.post(INFER, json={"rows": 1})
        await recovery
        assert response.status == 200 and fakes["stable"].inferences == 1


@pytest.mark.asyncio
async def test_answers_reach_the_client_whatever_the_predictor_connection_does(tmp_path):
    """Chunked answers, Connection: close, idle connections the predictor closed."""
    async with deployment(tmp_path, {"stable": 100}, keepalive_timeout=0.1) as (client, fakes):
        metrics = await client.get("/metrics")
        assert metrics.status == 200
        assert await metrics.text() == "".join(f"metric_{i} {i}\n" * 100 for i in range(10))
        for _ in range(3):
            closed = await client.post(INFER, json={"rows": 2, "close": True})
            assert closed.status == 200 and len((await closed.json())["outputs"][0]["data"]) == 2
        for _ in range(3):
            await asyncio.sleep(0.3)  # the predictor closes the router's idle connections
            statuses = [(await client.post(INFER, json={"rows": 1})).status for _ in range(5)]
            assert statuses == [200] * 5
        response = await client.post(
            INFER, json={"rows": 1}, headers={**ADMIN, "x-request-id": "with-token"}
        )
        assert response.status == 200
        sent = {k.lower(): v for k, v in fakes["stable"].last_headers.items()}
        assert sent["x-request-id"] == "with-token" and "authorization" not in sent
        assert TOKEN not in str(sent)  # the admin token never reaches a predictor
        assert (await _samples(client))["stable"]["errors"] == 0
        assert await _health(client, "stable")


# -- the real router process ------------------------------------------------------------------


def _router_command(state_file: Path, port: int, *extra: str) -> list[str]:
    module = [sys.executable, "-m", "e2eai.serving.router"]
    return [*module, "--state", str(state_file), "--port", str(port), *extra]


@pytest.mark.parametrize("token", [None, ""])
def test_the_router_refuses_to_start_without_an_admin_token(tmp_path, token):
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if token is not None:
        env[TOKEN_ENV] = token
    done = subprocess.run(
        _router_command(tmp_path / "state.json", free_port()),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert TOKEN_ENV in done.stderr


@contextlib.contextmanager
def router_process(state_file: Path, port: int, *extra: str) -> Iterator[int]:
    log_path = state_file.parent / f"router-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _router_command(state_file, port, *extra),
            env={**os.environ, TOKEN_ENV: TOKEN},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/router/status", process.pid, 30, log_path)
        yield process.pid
    finally:
        stop_process(process.pid, grace=5)


def _v2_body() -> dict:
    row = feature_rows(1)[0]
    return {
        "inputs": [
            {"name": f.name, "datatype": f.v2_datatype, "shape": [1, 1], "data": [row[f.name]]}
            for f in schema.model_features()
        ]
    }


def _until_refused(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=0.5)
        except httpx.ConnectError:
            return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"port {port} still answers after the kill")


@contextlib.contextmanager
def predictor_process(model: Path, port: int, log_path: Path) -> Iterator[int]:
    """A predictor server on ``port``, leading its own process group; its pid."""
    command = [sys.executable, "-m", "e2eai.serving.server", "--onnx", str(model)]
    command += ["--served-name", NAME, "--http-port", str(port), "--grpc-port", "0"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/v2/health/ready", process.pid, 60, log_path)
        yield process.pid
    finally:
        stop_process(process.pid, grace=2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_kill_9_of_the_only_predictor_restarted_on_the_same_port_fails_no_request(tmp_path):
    model = build_onnx_model(tmp_path / "model.onnx")
    predictor_port, port = free_port(), free_port()
    state_file = tmp_path / "state.json"
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        body = _v2_body()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while not stop.is_set():
                try:
                    statuses.append(client.post(INFER, json=body).status_code)
                except httpx.HTTPError:
                    statuses.append(-1)

    threads = [threading.Thread(target=load) for _ in range(3)]
    try:
        with predictor_process(model, predictor_port, tmp_path / "first.log") as pid:
            _write_state(state_file, [_backend("stable", predictor_port, 100, pid)], port)
            with router_process(state_file, port, "--failover-wait", "15"):
                for thread in threads:
                    thread.start()
                time.sleep(1.0)
                # The whole group: kserve serves from a forked child of the pid.
                os.killpg(pid, signal.SIGKILL)
                killed_at, killed = len(statuses), time.monotonic()
                _until_refused(predictor_port)
                time.sleep(2.0)  # the supervisor notices and restarts it on the same port
                with predictor_process(model, predictor_port, tmp_path / "second.log"):
                    outage = time.monotonic() - killed
                    back_at = len(statuses)
                    time.sleep(1.0)
                    stop.set()
                    for thread in threads:
                        thread.join(timeout=40)
                    status = httpx.get(f"http://127.0.0.1:{port}/router/status").json()
    finally:
        stop.set()
    assert killed_at > 10 and len(statuses) > back_at + 10
    assert outage > 2.0  # really down, on the same port, for seconds
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert status["backends"][0]["healthy"] is True
