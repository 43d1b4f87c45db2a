"""The app's way to the model: the serving endpoint over HTTP, never a model in-process.

Requests go as V1 instances of the task's request fields to the local router (or an
InferenceService URL on a cluster, ``settings.app.serving_url``), to the predictor's V1
``:explain`` route: the predictor enriches them from Feast and answers the probabilities,
the model inputs it used and, when the model explains itself, each input's contribution.
Image and text tasks send ``{"image": {"b64": …}}`` / ``{"text": …}`` instances and get each
class's probability per request, with a saliency map or token attributions.
The router's ``x-e2eai-slot`` / ``x-e2eai-version`` headers say who answered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from e2eai.errors import E2eaiError

if TYPE_CHECKING:
    from e2eai.config import Settings


class ServingUnavailable(E2eaiError):
    """No serving endpoint is configured or it cannot answer (503 to the client)."""


class ServingRejected(E2eaiError):
    """The predictor refused the request (a 4xx): what and which field, for the client."""

    def __init__(self, status: int, message: str, field: str | None) -> None:
        self.status = status
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Served:
    """The serving layer's answer to one batch of requests."""

    probabilities: list[float | list[float]]  # P(positive), or each class's (multi-class)
    model_version: str
    slot: str
    latency_ms: float
    features: list[dict[str, Any] | None]  # per request: the model inputs used
    explanations: list[dict[str, Any] | None]  # per request: None when the model gives none


def serving_endpoint(settings: Settings) -> str | None:
    """``settings.app.serving_url``, else the local router's endpoint (None: nothing serves)."""
    if settings.app.serving_url:
        return settings.app.serving_url.rstrip("/")
    from e2eai.serving.state import read_state, state_path

    state = read_state(state_path(settings.home))
    return None if state is None else state.endpoint


class ServingClient:
    """An async keep-alive client of the serving endpoint for one model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_name = settings.serving.model_name
        self._client = httpx.AsyncClient(
            timeout=settings.app.request_timeout_seconds,
            limits=httpx.Limits(max_keepalive_connections=32),
        )

    async def close(self) -> None:
        await self._client.aclose()

    def endpoint(self) -> str:
        endpoint = serving_endpoint(self.settings)
        if endpoint is None:
            raise ServingUnavailable("no model is served (start one with `e2eai serve --enrich`)")
        return endpoint

    async def ready(self) -> bool:
        try:
            response = await self._client.get(f"{self.endpoint()}/v2/health/ready", timeout=2)
        except (httpx.HTTPError, ServingUnavailable):
            return False
        return response.status_code == 200

    async def predict(self, instances: list[dict[str, Any]], request_id: str) -> Served:
        """Probabilities for ``instances`` (JSON-ready request fields), in order."""
        url = f"{self.endpoint()}/v1/models/{self.model_name}:explain"
        started = time.perf_counter()
        try:
            response = await self._client.post(
                url,
                content=orjson.dumps({"instances": instances}),
                headers={"content-type": "application/json", "x-request-id": request_id},
            )
        except httpx.HTTPError as exc:
            raise ServingUnavailable(f"serving at {url} failed: {type(exc).__name__}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status_code >= 500:
            raise ServingUnavailable(f"serving answered {response.status_code}")
        body = _json(response.content)
        if response.status_code != 200:
            raise ServingRejected(
                response.status_code,
                str(body.get("error") or f"serving refused the request ({response.status_code})"),
                body.get("field") if isinstance(body.get("field"), str) else None,
            )
        probabilities = body.get("predictions")
        if not isinstance(probabilities, list) or len(probabilities) != len(instances):
            raise ServingUnavailable("serving answered without one prediction per request")
        try:
            answers = [_probability_row(p) for p in probabilities]
        except (TypeError, ValueError):
            raise ServingUnavailable(
                "serving answered probabilities that are not numbers"
            ) from None
        return Served(
            probabilities=answers,
            model_version=response.headers.get("x-e2eai-version")
            or str(body.get("model_version") or ""),
            slot=response.headers.get("x-e2eai-slot", ""),
            latency_ms=latency_ms,
            features=_per_request(body.get("features"), len(instances)),
            explanations=_per_request(body.get("explanations"), len(instances)),
        )


def _probability_row(value: Any) -> float | list[float]:
    if isinstance(value, list):
        return [float(p) for p in value]
    return float(value)


def _per_request(values: Any, n: int) -> list[dict[str, Any] | None]:
    """One object (or None) per request: what an older predictor leaves out is None."""
    if not isinstance(values, list) or len(values) != n:
        return [None] * n
    return [v if isinstance(v, dict) else None for v in values]


def _json(content: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}
