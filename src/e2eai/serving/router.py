"""The local traffic router: splits inference requests between stable and canary by weight.

An aiohttp reverse proxy on loopback (``python -m e2eai.serving.router --state state.json``).
It health-checks both predictors, retries a request on the other predictor when one dies
(same ``x-request-id``: predictions are pure, so a retry is idempotent; a client that
repeats a request id gets the stored answer instead of a second inference), counts in-flight
requests so a predictor can be drained before it stops, and keeps per-slot samples (status,
latency, predicted probabilities joined with feedback labels) for canary analysis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import sys
import time
import uuid
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

from e2eai.serving.state import Backend, ServingState, read_state

log = logging.getLogger("e2eai.serving.router")

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-authenticate",
}
_MAX_ATTEMPTS = 3
_REPLAY_CACHE = 10_000
_PREDICTION_LOG = 200_000
_LATENCY_SAMPLES = 50_000


class SlotStats:
    """What the router saw of one slot since the canary was deployed."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0  # 5xx or connection failures: the predictor's fault
        self.client_errors = 0  # 4xx: the request's fault, not held against the model
        self.latencies_ms: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self.scored: list[tuple[float, int]] = []  # (probability, label) once feedback arrives

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "latencies_ms": list(self.latencies_ms),
            "scored": self.scored,
        }


class Router:
    """Routing table, health, in-flight counts and samples of one local deployment."""

    def __init__(self, state_file: Path, health_interval: float = 0.5) -> None:
        self.state_file = state_file
        self.health_interval = health_interval
        self.state: ServingState | None = None
        self.healthy: dict[str, bool] = {}
        self.inflight: dict[str, int] = {"stable": 0, "canary": 0}
        self.stats: dict[str, SlotStats] = {"stable": SlotStats(), "canary": SlotStats()}
        self.predictions: OrderedDict[str, tuple[str, list[float]]] = OrderedDict()
        self.replies: OrderedDict[str, tuple[int, bytes, str]] = OrderedDict()
        self.session: ClientSession | None = None
        self._health_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def startup(self, _: web.Application) -> None:
        self.session = ClientSession(
            connector=TCPConnector(limit=256, keepalive_timeout=30),
            timeout=ClientTimeout(total=30, connect=2),
            auto_decompress=False,
        )
        self.reload()
        self._health_task = asyncio.create_task(self._health_loop())

    async def cleanup(self, _: web.Application) -> None:
        if self._health_task:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if self.session:
            await self.session.close()

    def reload(self, reset_samples: bool = False) -> None:
        self.state = read_state(self.state_file)
        for backend in self._backends():
            self.healthy.setdefault(backend.url, True)
        if reset_samples:
            self.stats = {"stable": SlotStats(), "canary": SlotStats()}
            self.predictions.clear()

    def _backends(self) -> list[Backend]:
        return self.state.backends() if self.state else []

    async def _health_loop(self) -> None:
        assert self.session is not None
        while True:
            for backend in self._backends():
                try:
                    async with self.session.get(
                        f"{backend.url}/v2/health/ready", timeout=ClientTimeout(total=1)
                    ) as response:
                        self.healthy[backend.url] = response.status == 200
                except (ClientError, TimeoutError, OSError):
                    self.healthy[backend.url] = False
            await asyncio.sleep(self.health_interval)

    # -- routing -----------------------------------------------------------------------------

    def choose(self, exclude: set[str], weighted: bool) -> Backend | None:
        """A backend by weight among healthy ones; unhealthy ones only as the last resort."""
        candidates = [b for b in self._backends() if b.url not in exclude]
        if not candidates:
            return None
        healthy = [b for b in candidates if self.healthy.get(b.url, True)]
        pool = healthy or candidates
        if not weighted:
            return next((b for b in pool if b.slot == "stable"), pool[0])
        weights = [b.weight for b in pool]
        if sum(weights) == 0:
            # Drained or failed-over: any live backend beats an error.
            return next((b for b in pool if b.slot == "stable"), pool[0])
        return random.choices(pool, weights=weights)[0]

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """Forward one request, retrying on another predictor if this one fails."""
        assert self.session is not None
        request_id = request.headers.get("x-request-id")
        if request_id and request_id in self.replies:
            status, body, content_type = self.replies[request_id]
            return web.Response(
                status=status,
                body=body,
                content_type=None,
                headers={
                    "content-type": content_type,
                    "x-e2eai-replayed": "1",
                    "x-request-id": request_id,
                },
            )
        request_id = request_id or uuid.uuid4().hex
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["x-request-id"] = request_id
        is_inference = request.method == "POST"
        tried: set[str] = set()
        last_error = "no predictor is deployed"
        for _ in range(_MAX_ATTEMPTS):
            backend = self.choose(tried, weighted=is_inference)
            if backend is None:
                break
            tried.add(backend.url)
            slot = backend.slot
            self.inflight[slot] += 1
            started = time.perf_counter()
            try:
                async with self.session.request(
                    request.method, backend.url + request.path_qs, data=body, headers=headers
                ) as upstream:
                    payload = await upstream.read()
                    status = upstream.status
                    content_type = upstream.headers.get("content-type", "application/json")
                    upstream_headers = {
                        k: v
                        for k, v in upstream.headers.items()
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-type"
                    }
            except (ClientError, TimeoutError, OSError) as exc:
                last_error = f"{slot} predictor failed: {type(exc).__name__}: {exc}"
                self.healthy[backend.url] = False
                if is_inference:
                    self.stats[slot].requests += 1
                    self.stats[slot].errors += 1
                continue
            finally:
                self.inflight[slot] -= 1
            elapsed_ms = (time.perf_counter() - started) * 1000
            if is_inference:
                self._record(slot, status, elapsed_ms, payload, request_id)
            if status >= 500 and is_inference:
                last_error = f"{slot} predictor answered {status}"
                continue
            if is_inference and status == 200:
                self._remember_reply(request_id, status, payload, content_type)
            upstream_headers.update(
                {
                    "content-type": content_type,
                    "x-request-id": request_id,
                    "x-e2eai-slot": slot,
                    "x-e2eai-version": backend.version,
                }
            )
            return web.Response(status=status, body=payload, headers=upstream_headers)
        return web.json_response({"error": last_error, "request_id": request_id}, status=503)

    def _record(
        self, slot: str, status: int, elapsed_ms: float, payload: bytes, request_id: str
    ) -> None:
        stats = self.stats[slot]
        stats.requests += 1
        if status >= 500:
            stats.errors += 1
            return
        if status >= 400:
            stats.client_errors += 1
            return
        stats.latencies_ms.append(elapsed_ms)
        probabilities = _probabilities(payload)
        if probabilities is not None:
            self.predictions[request_id] = (slot, probabilities)
            if len(self.predictions) > _PREDICTION_LOG:
                self.predictions.popitem(last=False)

    def _remember_reply(self, request_id: str, status: int, body: bytes, content_type: str) -> None:
        self.replies[request_id] = (status, body, content_type)
        if len(self.replies) > _REPLAY_CACHE:
            self.replies.popitem(last=False)

    # -- control endpoints -------------------------------------------------------------------

    async def handle_reload(self, request: web.Request) -> web.Response:
        params = await _json(request)
        self.reload(reset_samples=bool(params.get("reset_samples")))
        return web.json_response({"reloaded": True})

    async def handle_drain(self, request: web.Request) -> web.Response:
        """Wait until no request is in flight to ``slot`` (its weight is already 0)."""
        params = await _json(request)
        slot = params.get("slot")
        if slot not in self.inflight:
            return web.json_response({"error": f"unknown slot {slot!r}"}, status=400)
        deadline = time.monotonic() + float(params.get("timeout", 10))
        while self.inflight[slot] > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return web.json_response({"slot": slot, "inflight": self.inflight[slot]})

    async def handle_status(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "backends": [
                    {
                        "slot": b.slot,
                        "version": b.version,
                        "url": b.url,
                        "weight": b.weight,
                        "healthy": self.healthy.get(b.url, False),
                        "inflight": self.inflight[b.slot],
                    }
                    for b in self._backends()
                ],
                "requests": {slot: s.requests for slot, s in self.stats.items()},
                "errors": {slot: s.errors for slot, s in self.stats.items()},
                "pid": os.getpid(),  # lets the starter check it reached *this* router
            }
        )

    async def handle_samples(self, _: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({slot: s.as_dict() for slot, s in self.stats.items()}),
            content_type="application/json",
        )

    async def handle_feedback(self, request: web.Request) -> web.Response:
        """Attach ground-truth labels to logged predictions: [{request_id, labels: [0|1…]}]."""
        params = await _json(request)
        items = params.get("feedback")
        if not isinstance(items, list):
            return web.json_response({"error": "feedback: expected a list"}, status=400)
        matched = 0
        for item in items:
            if not isinstance(item, dict):
                continue
            logged = self.predictions.pop(str(item.get("request_id")), None)
            labels = item.get("labels")
            if logged is None or not isinstance(labels, list) or len(labels) != len(logged[1]):
                continue
            slot, probabilities = logged
            self.stats[slot].scored.extend(
                (p, int(y)) for p, y in zip(probabilities, labels, strict=True)
            )
            matched += 1
        return web.json_response({"matched": matched, "received": len(items)})


def _probabilities(payload: bytes) -> list[float] | None:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None  # binary tensor responses are not logged for feedback
    if not isinstance(body, dict):
        return None
    if "predictions" in body:
        return list(body["predictions"])
    outputs = body.get("outputs")
    if outputs and isinstance(outputs[0], dict) and "data" in outputs[0]:
        return list(outputs[0]["data"])
    return None


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def build_app(state_file: Path, health_interval: float = 0.5) -> web.Application:
    router = Router(state_file, health_interval)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(router.startup)
    app.on_cleanup.append(router.cleanup)
    app.router.add_post("/router/reload", router.handle_reload)
    app.router.add_post("/router/drain", router.handle_drain)
    app.router.add_post("/router/feedback", router.handle_feedback)
    app.router.add_get("/router/status", router.handle_status)
    app.router.add_get("/router/samples", router.handle_samples)
    app.router.add_route("*", "/{tail:.*}", router.proxy)
    app["router"] = router
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e2eai.serving.router")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    web.run_app(
        build_app(args.state),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        shutdown_timeout=5,
    )


if __name__ == "__main__":
    main()
