"""The local traffic router: splits inference requests between stable and canary by weight.

An aiohttp server on loopback (``python -m e2eai.serving.router --state state.json``, the
admin token in ``$E2EAI_AUTH__ADMIN_TOKEN``) with its own small keep-alive HTTP/1.1 client
to the predictors (:class:`UpstreamPool`, for the hop's CPU cost). It forwards only the
inference and metadata routes of the served model (not kserve's repository endpoints),
health-checks both
predictors and sends traffic only to healthy ones, retries an inference on the other
predictor when one fails (same ``x-request-id``: predictions are pure, so a retry is
idempotent), waits up to ``failover_wait`` seconds for a predictor to come back when none is
healthy (a supervisor restarting it on the same port), counts in-flight requests so a
predictor can be drained before it stops, and keeps per-slot samples (status, latency,
predicted probabilities joined with feedback labels) for canary analysis.

With ``--shadow`` (``serving.canary_shadow``, on by default) every inference answered while a
canary is deployed is also sent, concurrently and marked ``x-e2eai-shadow: 1``, to the
other slot: the traffic weight still decides whose answer the client gets and whose latency
and errors count for its slot, but both models score every request, so feedback yields
*paired* rows ``(p_stable, p_canary, label)`` for the anytime-valid comparison of
:mod:`e2eai.serving.sequential` (for a multi-class model, ``p`` is the probability each
model gave the labelled class and ``label`` is 1: see :func:`_scored`). The client never
waits for the shadow; a shadow that fails only counts as a shadow error.

A client that repeats a request id with the same request gets the stored answer instead of a
second inference; the same id with another method, path or body is a conflict (409). The
control routes under ``/router/`` need the admin token, except ``GET /router/status`` (what
readiness checks read; it holds nothing secret).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import os
import random
import re
import sys
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web
from pydantic import ValidationError

from e2eai.auth import TOKEN_ENV, is_authorized
from e2eai.serving.state import Backend, ServingState, read_state
from e2eai.serving.upstream import UpstreamPool

log = logging.getLogger("e2eai.serving.router")

_HOP_BY_HOP = frozenset(
    {
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
        # The admin token is the router's business; predictors never need (or log) it.
        "authorization",
        "expect",  # the router's server answers 100-continue itself
    }
)
# Response headers the router sets itself.
_OWN_RESPONSE_HEADERS = _HOP_BY_HOP | {"content-type", "date", "server"}
_SLOTS = ("stable", "canary")
_MAX_ATTEMPTS = 4
_RETRY_BACKOFF = 0.05  # seconds between looks for a healthy predictor while none is
_HEALTH_TIMEOUT = 1.0
_SERVED_LOG = 200_000  # request ids remembered for replay and feedback
_LATENCY_SAMPLES = 50_000
_SHADOW_WAIT_SECONDS = 10.0  # longest a feedback call waits for shadows still in flight
_CONTROL_MAX_BODY = 16 * 1024 * 1024  # feedback batches can be large; inference bodies cannot
_MAX_DRAIN_TIMEOUT = 300.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SlotStats:
    """What the router saw of one slot since the canary was deployed."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0  # 5xx or connection failures: the predictor's fault
        self.client_errors = 0  # 4xx: the request's fault, not held against the model
        self.latencies_ms: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self.scored: list[tuple[float, int]] = []  # (probability, label) once feedback arrives
        self.shadow_requests = 0  # shadow copies this slot scored for the other slot's requests
        self.shadow_errors = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "latencies_ms": list(self.latencies_ms),
            "scored": self.scored,
            "shadow_requests": self.shadow_requests,
            "shadow_errors": self.shadow_errors,
        }


@dataclass(slots=True)
class ServedReply:
    """A successful inference the router answered: replayed on a retry, labelled by feedback.

    The reply body is kept as bytes and parsed only when feedback arrives, so the hot path
    never decodes a prediction.
    """

    fingerprint: bytes  # sha256 of (method, path, body) of the request
    slot: str
    version: str
    payload: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...]
    generation: int  # samples generation it belongs to (reset_samples starts a new one)
    labelled: set[int] = field(default_factory=set)  # rows whose label arrived
    shadow: asyncio.Task[bytes | None] | None = None  # the other slot's answer, when shadowed

    def probabilities(self) -> list[float] | None:
        return _probabilities(self.payload)

    def shadow_probabilities(self, rows: int) -> list[float] | None:
        """The shadow slot's probabilities for the same rows; None when there are none yet."""
        task = self.shadow
        if task is None or not task.done() or task.cancelled() or task.exception():
            return None
        payload = task.result()
        values = _probabilities(payload) if payload is not None else None
        return values if values is not None and len(values) == rows else None


class BadRequest(Exception):
    """A control request whose body is not what the route takes; ``field`` names what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(slots=True)
class _Attempt:
    """One answer of a predictor, as it goes back to the client."""

    backend: Backend
    status: int
    payload: bytes
    content_type: str
    headers: dict[str, str]


def allowed_routes(model_name: str) -> tuple[dict[str, str], re.Pattern[str]]:
    """Exact ``path -> method`` the router forwards, and the versioned model routes."""
    name = quote(model_name, safe="-._~")
    exact = {
        "/v2": "GET",
        "/v2/health/live": "GET",
        "/v2/health/ready": "GET",
        f"/v2/models/{name}": "GET",
        f"/v2/models/{name}/ready": "GET",
        f"/v2/models/{name}/infer": "POST",
        "/v1/models": "GET",
        f"/v1/models/{name}": "GET",
        f"/v1/models/{name}:predict": "POST",
        f"/v1/models/{name}:explain": "POST",
        "/metrics": "GET",
    }
    versioned = re.compile(
        rf"/v2/models/{re.escape(name)}/versions/[A-Za-z0-9_-][A-Za-z0-9_.-]*(/ready|/infer)?"
    )
    return exact, versioned


class Router:
    """Routing table, health, in-flight counts and samples of one local deployment."""

    def __init__(
        self,
        state_file: Path,
        health_interval: float = 0.5,
        *,
        failover_wait: float = 15.0,
        max_body_bytes: int = 1_000_000,
        shadow: bool = False,
    ) -> None:
        self.state_file = state_file
        self.shadow = shadow
        self.health_interval = health_interval
        self.failover_wait = failover_wait
        self.max_body_bytes = max_body_bytes
        self.state: ServingState | None = None
        self.healthy: dict[str, bool] = {}
        self.inflight: dict[str, int] = dict.fromkeys(_SLOTS, 0)
        self.stats: dict[str, SlotStats] = {slot: SlotStats() for slot in _SLOTS}
        # (p_stable, p_canary, label) of labelled rows both slots scored, in label order.
        self.paired: list[tuple[float, float, int]] = []
        self._shadows: set[asyncio.Task[bytes | None]] = set()  # strong refs while running
        self.served: OrderedDict[str, ServedReply] = OrderedDict()
        self.generation = 0
        # Ids for requests that carry none: unique per router process, cheaper than uuid4.
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count()
        self.upstream = UpstreamPool()
        self._routes: tuple[dict[str, str], re.Pattern[str]] = ({}, re.compile(r"(?!)"))
        self._probe_soon = asyncio.Event()
        self._health_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def startup(self, _: web.Application) -> None:
        self.reload()
        self._health_task = asyncio.create_task(self._health_loop())

    async def cleanup(self, _: web.Application) -> None:
        for task in list(self._shadows):
            task.cancel()
        if self._health_task:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        self.upstream.close()

    def reload(self, reset_samples: bool = False) -> None:
        self.state = read_state(self.state_file)
        for backend in self._backends():
            self.healthy.setdefault(backend.url, True)
        self.upstream.retain({b.http_port for b in self._backends()})
        self._routes = allowed_routes(self.state.model_name if self.state else "")
        if reset_samples:
            self.stats = {slot: SlotStats() for slot in _SLOTS}
            self.paired = []
            self.generation += 1  # earlier replies still replay, but take no more feedback
        self._probe_soon.set()

    def _backends(self) -> list[Backend]:
        return self.state.backends() if self.state else []

    async def _health_loop(self) -> None:
        while True:
            backends = self._backends()
            # Concurrently: a stopped (SIGSTOP) predictor must not delay the other's probe.
            results = await asyncio.gather(
                *(self._ready(b) for b in backends), return_exceptions=True
            )
            for backend, ready in zip(backends, results, strict=True):
                if isinstance(ready, BaseException):  # a bug, not a verdict: keep probing
                    log.error("health probe of %s failed: %r", backend.url, ready)
                    ready = False
                self.healthy[backend.url] = ready
            # Requests waiting for a predictor to come back ask for an early probe.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._probe_soon.wait(), self.health_interval)
            self._probe_soon.clear()

    async def _ready(self, backend: Backend) -> bool:
        try:
            answer = await self.upstream.request(
                "127.0.0.1", backend.http_port, "GET", "/v2/health/ready", {}, b"", _HEALTH_TIMEOUT
            )
        except (TimeoutError, OSError):
            return False
        return answer.status == 200

    # -- routing -----------------------------------------------------------------------------

    def choose(self, exclude: set[str], weighted: bool) -> Backend | None:
        """A healthy backend not in ``exclude``, by weight; None when there is none."""
        pool = [
            b for b in self._backends() if b.url not in exclude and self.healthy.get(b.url, True)
        ]
        if not pool:
            return None
        if len(pool) == 1:
            return pool[0]
        if not weighted:
            return next((b for b in pool if b.slot == "stable"), pool[0])
        weights = [b.weight for b in pool]
        if sum(weights) == 0:
            # Drained or failed-over: any live backend beats an error.
            return next((b for b in pool if b.slot == "stable"), pool[0])
        return random.choices(pool, weights=weights)[0]

    def _route_method(self, path: str) -> str | None:
        """The one method ``path`` is forwarded for, or None when it is not forwarded."""
        exact, versioned = self._routes
        method = exact.get(path)
        if method is not None:
            return method
        match = versioned.fullmatch(path)
        if match is None:
            return None
        return "POST" if match.group(1) == "/infer" else "GET"

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """Forward one allowed request; retry an inference on another predictor if one fails."""
        path_qs = request.raw_path  # forwarded exactly as matched: no normalising in between
        path = path_qs.partition("?")[0]
        if self._route_method(path) != request.method:
            return _error(404, f"{request.method} {path[:200]} is not served by the router")
        is_inference = request.method == "POST"
        body = await self._body(request) if is_inference else b""
        if isinstance(body, web.Response):
            return body
        fingerprint = _fingerprint(request.method, path_qs, body) if is_inference else b""
        request_id = request.headers.get("x-request-id")
        if request_id:
            served = self.served.get(request_id)
            if served is not None:
                if served.fingerprint != fingerprint:
                    return _error(
                        409,
                        f"x-request-id {request_id[:100]!r} was already used for another "
                        "request: send a new id for a new request",
                    )
                return _replay(request_id, served)
        else:
            request_id = f"{self._id_prefix}{next(self._ids):08x}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["x-request-id"] = request_id
        if not is_inference:
            return await self._forward_once(request.method, path_qs, headers, request_id)
        return await self._infer(path_qs, body, headers, request_id, fingerprint)

    async def _body(self, request: web.Request) -> bytes | web.Response:
        """The request body, or a 4xx answer: 413 when it is larger than ``max_body_bytes``,
        415 when it is compressed (aiohttp would inflate it, unbounded), 400 when unreadable."""
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in {"", "identity"}:
            await _discard(request, self.max_body_bytes)  # an unread body resets the connection
            refused = _error(
                415, f"Content-Encoding {encoding[:40]!r} is not accepted: send it plain"
            )
            refused.force_close()  # what is left of an undecodable body must not be parsed next
            return refused
        limit = self.max_body_bytes
        length = request.content_length
        try:
            if length is not None and length <= limit:
                return await request.read()
            if length is None:  # chunked: stop reading as soon as it is too large
                chunks = bytearray()
                async for chunk in request.content.iter_any():
                    chunks += chunk
                    if len(chunks) > limit:
                        break
                else:
                    return bytes(chunks)
        except web.HTTPException:
            raise
        except (ValueError, OSError, asyncio.IncompleteReadError) as exc:
            return _error(400, f"request body could not be read: {type(exc).__name__}")
        return _error(413, f"request body exceeds {limit} bytes (--max-body-bytes)")

    async def _forward_once(
        self, method: str, path_qs: str, headers: dict[str, str], request_id: str
    ) -> web.StreamResponse:
        """A metadata/health read: one attempt on a healthy predictor, never retried."""
        backend = self.choose(set(), weighted=False)
        if backend is None:
            return _error(503, "no healthy predictor", request_id)
        try:
            answer = await self._send(backend, method, path_qs, b"", headers)
        except (TimeoutError, OSError) as exc:
            self.healthy[backend.url] = False
            return _error(503, f"{backend.slot} predictor failed: {type(exc).__name__}", request_id)
        return _respond(answer, request_id)

    async def _infer(
        self,
        path_qs: str,
        body: bytes,
        headers: dict[str, str],
        request_id: str,
        fingerprint: bytes,
    ) -> web.StreamResponse:
        """Send an inference to a healthy predictor by weight, retrying on failure.

        A predictor that answered 5xx is not tried again for this request; one that could not
        be reached is marked unhealthy and tried again once its health check passes. When no
        predictor is healthy, wait (polling health every ``_RETRY_BACKOFF``) up to
        ``failover_wait`` seconds before answering 503.
        """
        answered_5xx: set[str] = set()
        last_5xx: _Attempt | None = None
        last_error = "no predictor is deployed"
        deadline: float | None = None
        attempts = 0
        shadow: tuple[str, asyncio.Task[bytes | None]] | None = None
        wants_shadow = self.shadow and _is_prediction(path_qs)
        while attempts < _MAX_ATTEMPTS:
            backend = self.choose(answered_5xx, weighted=True)
            if backend is not None and wants_shadow:
                wants_shadow = False  # one shadow per request, alongside its first attempt
                shadow = self._start_shadow(backend, path_qs, body, headers)
            if backend is None:
                if last_5xx is not None or not self._backends():
                    break  # a predictor's own answer beats waiting for another one
                now = time.monotonic()
                deadline = deadline or now + self.failover_wait
                if now >= deadline:
                    break
                self._probe_soon.set()
                await asyncio.sleep(_RETRY_BACKOFF)
                continue
            attempts += 1
            slot = backend.slot
            stats = self.stats[slot]
            self.inflight[slot] += 1
            started = time.perf_counter()
            try:
                answer = await self._send(backend, "POST", path_qs, body, headers)
            except (TimeoutError, OSError) as exc:
                last_error = f"{slot} predictor failed: {type(exc).__name__}: {exc}"
                log.warning("%s v%s (%s): %s", slot, backend.version, request_id, last_error)
                self.healthy[backend.url] = False
                stats.requests += 1
                stats.errors += 1
                continue
            finally:
                self.inflight[slot] -= 1
            stats.requests += 1
            status = answer.status
            # 501: a route or option the predictor does not implement (a versioned URL): the
            # request's fault, not the model's, and no other predictor implements it either.
            if status >= 500 and status != 501:
                log.warning("%s v%s (%s) answered %d", slot, backend.version, request_id, status)
                stats.errors += 1
                answered_5xx.add(backend.url)
                last_5xx = answer
                continue
            if status >= 400:
                stats.client_errors += 1
            else:
                stats.latencies_ms.append((time.perf_counter() - started) * 1000)
                if status == 200:
                    # A retry answered by the shadow's own slot leaves nothing to pair.
                    paired = shadow[1] if shadow and shadow[0] != slot else None
                    self._remember(request_id, fingerprint, answer, paired)
            return _respond(answer, request_id)
        if last_5xx is not None:
            return _respond(last_5xx, request_id)
        return _error(503, last_error, request_id)

    async def _send(
        self, backend: Backend, method: str, path_qs: str, body: bytes, headers: dict[str, str]
    ) -> _Attempt:
        answer = await self.upstream.request(
            "127.0.0.1", backend.http_port, method, path_qs, headers, body
        )
        content_type = "application/json"
        forwarded: dict[str, str] = {}
        for raw_name, raw_value in answer.headers:
            name = raw_name.decode("latin-1").lower()
            if name == "content-type":
                content_type = raw_value.decode("latin-1")
            elif name not in _OWN_RESPONSE_HEADERS:
                forwarded[name] = raw_value.decode("latin-1")
        return _Attempt(backend, answer.status, answer.body, content_type, forwarded)

    def _start_shadow(
        self, primary: Backend, path_qs: str, body: bytes, headers: dict[str, str]
    ) -> tuple[str, asyncio.Task[bytes | None]] | None:
        """Send the request to the other slot too, when a canary is deployed and it takes
        traffic (weight > 0: a slot being drained gets no new shadows) and is healthy."""
        other = next(
            (
                b
                for b in self._backends()
                if b.slot != primary.slot and b.weight > 0 and self.healthy.get(b.url, True)
            ),
            None,
        )
        if other is None:
            return None
        task = asyncio.create_task(self._shadow(other, path_qs, body, headers))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)
        return other.slot, task

    async def _shadow(
        self, backend: Backend, path_qs: str, body: bytes, headers: dict[str, str]
    ) -> bytes | None:
        """One shadow inference: its answer's body, or None when it failed (counted)."""
        stats = self.stats[backend.slot]
        stats.shadow_requests += 1
        self.inflight[backend.slot] += 1
        try:
            answer = await self._send(
                backend, "POST", path_qs, body, {**headers, "x-e2eai-shadow": "1"}
            )
        except (TimeoutError, OSError):
            stats.shadow_errors += 1
            return None
        finally:
            self.inflight[backend.slot] -= 1
        if answer.status != 200:
            stats.shadow_errors += 1
            return None
        return answer.payload

    def _remember(
        self,
        request_id: str,
        fingerprint: bytes,
        answer: _Attempt,
        shadow: asyncio.Task[bytes | None] | None = None,
    ) -> None:
        self.served[request_id] = ServedReply(
            fingerprint=fingerprint,
            slot=answer.backend.slot,
            version=answer.backend.version,
            payload=answer.payload,
            content_type=answer.content_type,
            headers=tuple(answer.headers.items()),
            generation=self.generation,
            shadow=shadow,
        )
        if len(self.served) > _SERVED_LOG:
            self.served.popitem(last=False)

    # -- control endpoints -------------------------------------------------------------------

    def guarded(self, handler: Handler, admin_token: str) -> Handler:
        """``handler`` behind the admin token, with body errors answered as 400/413."""

        async def guarded_handler(request: web.Request) -> web.StreamResponse:
            if not is_authorized(request.headers.get("Authorization"), admin_token):
                return web.json_response(
                    {"error": "missing or wrong admin token (Authorization: Bearer <token>)"},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            try:
                return await handler(request)
            except BadRequest as exc:
                return web.json_response({"error": str(exc), "field": exc.field}, status=400)
            except web.HTTPRequestEntityTooLarge:
                return _error(413, f"request body exceeds {_CONTROL_MAX_BODY} bytes")

        return guarded_handler

    async def handle_reload(self, request: web.Request) -> web.Response:
        params = await _json_object(request)
        reset = params.get("reset_samples", False)
        if not isinstance(reset, bool):
            raise BadRequest("reset_samples", "expected true or false")
        try:
            self.reload(reset_samples=reset)
        except (OSError, ValueError, ValidationError) as exc:
            # The state file, not the request, is at fault: keep routing on the last good one.
            return _error(503, f"cannot read {self.state_file}: {type(exc).__name__}")
        return web.json_response({"reloaded": True})

    async def handle_drain(self, request: web.Request) -> web.Response:
        """Wait until no request is in flight to ``slot`` (its weight is already 0)."""
        params = await _json_object(request)
        slot = params.get("slot")
        if not isinstance(slot, str) or slot not in _SLOTS:
            raise BadRequest("slot", 'expected "stable" or "canary"')
        timeout = params.get("timeout", 10)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 <= timeout <= _MAX_DRAIN_TIMEOUT
        ):
            raise BadRequest(
                "timeout", f"expected a number of seconds in [0, {_MAX_DRAIN_TIMEOUT}]"
            )
        deadline = time.monotonic() + timeout
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
                "client_errors": {slot: s.client_errors for slot, s in self.stats.items()},
                "pid": os.getpid(),  # lets the starter check it reached *this* router
            }
        )

    async def handle_samples(self, _: web.Request) -> web.Response:
        samples: dict[str, Any] = {slot: s.as_dict() for slot, s in self.stats.items()}
        samples["paired"] = self.paired
        return web.Response(
            body=orjson.dumps(samples),
            content_type="application/json",
        )

    async def handle_feedback(self, request: web.Request) -> web.Response:
        """Attach ground-truth labels to answered predictions:
        ``[{request_id, labels: [0|1…], rows?: [i…]}]`` (class indices 0…K-1 for a
        multi-class model).

        Only ids the router answered since the samples were last reset, each row once: one
        label per predicted row, or with ``rows`` the labels of those rows of the
        request (a batch's predictions labelled one by one, as outcomes arrive). The answer
        counts what was not applied and why.
        """
        items = _feedback_items(await _json_object(request))
        counts = {"matched": 0, "received": len(items), "unknown": 0, "duplicate": 0, "invalid": 0}
        # A label must not outrun its shadow: under load the other slot's answer can still be
        # in flight when the outcome arrives, and a row labelled without it is never paired.
        pending = {
            served.shadow
            for request_id, _, _ in items
            if (served := self.served.get(request_id)) is not None
            and served.shadow is not None
            and not served.shadow.done()
        }
        if pending:
            await asyncio.wait(pending, timeout=_SHADOW_WAIT_SECONDS)
        for request_id, labels, rows in items:
            served = self.served.get(request_id)
            if served is None or served.generation != self.generation:
                counts["unknown"] += 1
                continue
            probabilities = served.probabilities()
            if probabilities is None:
                counts["invalid"] += 1
                continue
            rows = list(range(len(probabilities))) if rows is None else rows
            classes = _classes(probabilities)
            if (
                len(labels) != len(rows)
                or len(set(rows)) != len(rows)
                or not all(0 <= r < len(probabilities) for r in rows)
                or not all(type(y) is int and 0 <= y < classes for y in labels)
            ):
                counts["invalid"] += 1
                continue
            fresh = [(r, y) for r, y in zip(rows, labels, strict=True) if r not in served.labelled]
            if not fresh:
                counts["duplicate"] += 1
                continue
            served.labelled.update(r for r, _ in fresh)
            self.stats[served.slot].scored.extend(_scored(probabilities[r], y) for r, y in fresh)
            shadowed = served.shadow_probabilities(len(probabilities))
            if shadowed is not None and _classes(shadowed) == classes:
                pair = (probabilities, shadowed)
                stable, canary = pair if served.slot == "stable" else pair[::-1]
                for r, y in fresh:
                    (p_stable, label), (p_canary, _) = _scored(stable[r], y), _scored(canary[r], y)
                    self.paired.append((p_stable, p_canary, label))
            counts["matched"] += 1
        return web.json_response(counts)


async def _discard(request: web.Request, limit: int) -> None:
    """Read and drop up to ``limit`` bytes of a body that will not be used."""
    seen = 0
    with contextlib.suppress(Exception):  # undecodable is fine: it is being thrown away
        async for chunk in request.content.iter_any():
            seen += len(chunk)
            if seen > limit:
                break


def _is_prediction(path_qs: str) -> bool:
    """An inference whose answer carries probabilities (V2 ``/infer``, V1 ``:predict`` and
    ``:explain``, which the app sends): only those are worth a shadow."""
    path = path_qs.partition("?")[0]
    return path.endswith(("/infer", ":predict", ":explain"))


def _fingerprint(method: str, path_qs: str, body: bytes) -> bytes:
    digest = hashlib.sha256(f"{method} {path_qs}\n".encode())
    digest.update(body)
    return digest.digest()


def _error(status: int, message: str, request_id: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if request_id is not None:
        body["request_id"] = request_id
    return web.json_response(body, status=status)


def _respond(answer: _Attempt, request_id: str) -> web.Response:
    headers = answer.headers
    headers["content-type"] = answer.content_type
    headers["x-request-id"] = request_id
    headers["x-e2eai-slot"] = answer.backend.slot
    headers["x-e2eai-version"] = answer.backend.version
    return web.Response(status=answer.status, body=answer.payload, headers=headers)


def _replay(request_id: str, served: ServedReply) -> web.Response:
    headers = dict(served.headers)
    headers["content-type"] = served.content_type
    headers["x-request-id"] = request_id
    headers["x-e2eai-replayed"] = "1"
    headers["x-e2eai-slot"] = served.slot
    headers["x-e2eai-version"] = served.version
    return web.Response(status=200, body=served.payload, headers=headers)


def _classes(probabilities: list[Any]) -> int:
    """How many labels a prediction's rows can take: 2 (one P(positive) per row) or K."""
    first = probabilities[0] if probabilities else None
    return len(first) if isinstance(first, list) else 2


def _scored(probability: float | list[float], label: int) -> tuple[float, int]:
    """A labelled row as ``(p, y)`` for the samples: a binary row as it is; a multi-class
    row as the probability given to its labelled class, with ``y = 1``, so that the paired
    Brier difference compares ``(1 - p_label)²``, each model's squared shortfall on the
    true class (bounded in [0, 1] like the binary Brier score)."""
    if isinstance(probability, list):
        return float(probability[label]), 1
    return float(probability), label


def _probabilities(payload: bytes) -> list[Any] | None:
    """The predicted probabilities of a V1 or V2 JSON answer (a float per row, or a list of
    class probabilities per row for a ``[N, K]`` output); None for anything else."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None  # binary tensor responses take no feedback
    if not isinstance(body, dict):
        return None
    values: Any = body.get("predictions")
    width = 0  # > 1: class probabilities, flattened row by row
    if values is None:
        outputs = body.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            return None
        output = next(
            (o for o in outputs if isinstance(o, dict) and o.get("name") == "probability"),
            outputs[0],
        )
        if not isinstance(output, dict):
            return None
        values, shape = output.get("data"), output.get("shape")
        if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int):
            width = shape[1] if shape[1] > 1 else 0
    elif isinstance(values, list) and values and isinstance(values[0], list):  # V1 [N, K]
        width = len(values[0])
        if width < 2 or not all(isinstance(row, list) and len(row) == width for row in values):
            return None
        values = [v for row in values for v in row]
    if not isinstance(values, list):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    floats = [float(v) for v in values]
    if width:
        if len(floats) % width:
            return None
        return [floats[i : i + width] for i in range(0, len(floats), width)]
    return floats


def _feedback_items(params: dict[str, Any]) -> list[tuple[str, list[Any], list[int] | None]]:
    """``(request_id, labels, rows)`` of a feedback body; BadRequest naming the first bad
    field (``rows`` None: the labels are of every row)."""
    items = params.get("feedback")
    if not isinstance(items, list):
        raise BadRequest("feedback", "expected a list of {request_id, labels}")
    parsed = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"feedback[{i}]", "expected an object {request_id, labels}")
        request_id, labels = item.get("request_id"), item.get("labels")
        if not isinstance(request_id, str) or not request_id:
            raise BadRequest(f"feedback[{i}].request_id", "expected a non-empty string")
        if not isinstance(labels, list):
            raise BadRequest(f"feedback[{i}].labels", "expected a list of 0/1")
        rows = item.get("rows")
        if rows is not None and not (
            isinstance(rows, list) and all(type(r) is int and r >= 0 for r in rows)
        ):
            raise BadRequest(f"feedback[{i}].rows", "expected a list of row numbers (0, 1, …)")
        parsed.append((request_id, labels, rows))
    return parsed


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The JSON object of a control request's body ({} when empty); BadRequest otherwise."""
    raw = await request.read() if request.can_read_body else b""
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("body", f"not valid JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise BadRequest("body", "expected a JSON object")
    return body


#: The application's :class:`Router` (``app[ROUTER]``).
ROUTER = web.AppKey("router", Router)


def build_app(
    state_file: Path,
    health_interval: float = 0.5,
    *,
    admin_token: str,
    failover_wait: float = 15.0,
    max_body_bytes: int = 1_000_000,
    shadow: bool = False,
) -> web.Application:
    """The router's aiohttp application over the backends in ``state_file``."""
    if not admin_token:
        raise ValueError("the router needs an admin token for its control routes")
    router = Router(
        state_file,
        health_interval,
        failover_wait=failover_wait,
        max_body_bytes=max_body_bytes,
        shadow=shadow,
    )
    # Inference bodies are limited in Router._body; this bounds the control routes.
    app = web.Application(client_max_size=max(max_body_bytes, _CONTROL_MAX_BODY))
    app.on_startup.append(router.startup)
    app.on_cleanup.append(router.cleanup)
    app.router.add_post("/router/reload", router.guarded(router.handle_reload, admin_token))
    app.router.add_post("/router/drain", router.guarded(router.handle_drain, admin_token))
    app.router.add_post("/router/feedback", router.guarded(router.handle_feedback, admin_token))
    app.router.add_get("/router/samples", router.guarded(router.handle_samples, admin_token))
    app.router.add_get("/router/status", router.handle_status)
    app.router.add_route("*", "/{tail:.*}", router.proxy)
    app[ROUTER] = router
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e2eai.serving.router")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--failover-wait",
        type=float,
        default=15.0,
        help="Seconds an inference waits for a predictor to come back when none is healthy.",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=1_000_000,
        help="Largest inference request body forwarded (larger: 413).",
    )
    parser.add_argument(
        "--shadow",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="While a canary is deployed, score every prediction request on both slots.",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        print(
            f"router: the admin token is missing: set {TOKEN_ENV} in the router's environment",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if not (math.isfinite(args.failover_wait) and args.failover_wait >= 0):
        parser.error("--failover-wait must be a number of seconds ≥ 0")
    if args.max_body_bytes <= 0:
        parser.error("--max-body-bytes must be positive")
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    web.run_app(
        build_app(
            args.state,
            admin_token=token,
            failover_wait=args.failover_wait,
            max_body_bytes=args.max_body_bytes,
            shadow=args.shadow,
        ),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        shutdown_timeout=5,
    )


if __name__ == "__main__":
    main()
