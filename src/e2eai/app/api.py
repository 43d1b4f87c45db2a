"""The app's backend: a FastAPI application over the app database and the serving layer.

``create_app(settings)`` builds it. It never loads a model: ``POST /api/predictions`` sends the
task's request fields to the serving endpoint (the predictor enriches them from Feast),
stores every answer (through :class:`~e2eai.app.spool.RecordWriter`, so a database outage
loses nothing) and returns probability, risk band, version and slot. Feedback, rollout
actions and every other state change need the admin token; each admin action goes to the
audit log with who and why. Anything a client sends wrong is a 4xx naming the field, never a
500 or a traceback. ``/metrics`` is Prometheus text; ``/docs`` and ``/openapi.json`` describe
the API with the task's own request fields.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run
# time, and the request models are classes built inside create_app.

import collections
import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from e2eai.app.schemas import (
    Band,
    CanaryIn,
    DecisionInfo,
    ErrorBody,
    FeedbackBatchIn,
    FeedbackBatchStatus,
    FeedbackIn,
    FeedbackItemStatus,
    FeedbackOut,
    FeedbackStatus,
    ModelInfo,
    Models,
    MonitoringReport,
    MonitoringReports,
    PredictionItem,
    PredictionPage,
    Predictions,
    ReasonIn,
    RolloutInfo,
    SlotInfo,
    TaskInfo,
    feedback_batch_model,
    multiclass_feedback_models,
)
from e2eai.app.serving_client import ServingClient, ServingRejected, ServingUnavailable
from e2eai.auth import admin_token, matches_digest, token_digest
from e2eai.errors import E2eaiError, InvalidInferenceRequest

if TYPE_CHECKING:
    from e2eai.app.request_kinds import RequestKind
    from e2eai.app.store import AppStore, FeedbackOutcome, PredictionRecord, PredictionView
    from e2eai.config import Settings
    from e2eai.tasks import Task

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
_ERRORS = {
    400: {"model": ErrorBody},
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    413: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


class ApiError(Exception):
    """An answer other than 200, with the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        self.status = status
        self.field = field
        super().__init__(message)


_JSON = "application/json"


_SERVING_ROW = re.compile(r"\brow (\d+): ")


def band(probability: float, thresholds: tuple[float, float]) -> Band:
    low, high = thresholds
    return "low" if probability < low else ("medium" if probability < high else "high")


def _field_path(loc: tuple[Any, ...]) -> str | None:
    """``("body", "requests", 3, "carrier")`` → ``"requests[3].carrier"``."""
    path = ""
    for part in loc[1:] if loc and loc[0] in {"body", "query", "path"} else loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or None


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (one per app instance)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "e2eai_app_requests_total",
            "HTTP requests by route and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "e2eai_app_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56),
        )
        self.predictions = Counter(
            "e2eai_app_predictions_total",
            "Predictions answered, by model version and slot.",
            ["model_version", "slot"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "e2eai_app_feedback_total",
            "Feedback received, by outcome.",
            ["status"],
            registry=self.registry,
        )
        self.spool_depth = Gauge(
            "e2eai_app_spool_records",
            "Prediction records waiting in the spool for the database.",
            registry=self.registry,
        )


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``limit`` bytes, chunked or not, before parsing."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _too_large(send, self.limit)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _too_large(send, self.limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send: Any, limit: int) -> None:
    body = ErrorBody(error=f"request body exceeds {limit} bytes").model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Timing:
    """ASGI middleware: request count and latency per route template (not per URL)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or (
                "/static" if scope["path"].startswith("/static/") else "unmatched"
            )
            self.metrics.requests.labels(name, scope["method"], str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - started)


def _task_info(task: "Task", kind: "RequestKind") -> TaskInfo:
    classes = kind.classes
    return TaskInfo(
        name=task.name,
        description=task.description,
        positive_name=task.positive_name,
        modality=kind.modality,  # type: ignore[arg-type]
        classes=None if classes is None else list(classes),
        input=kind.task_input(),
        fields=kind.task_fields(),
    )


def _prediction_json(
    record: "PredictionRecord",
    thresholds: tuple[float, float],
    classes: tuple[str, ...] | None,
) -> dict:
    """A stored prediction as the API answers it, as plain JSON-ready data (the hot path:
    :class:`Prediction` describes it)."""
    multiclass = record.class_probabilities is not None
    names = classes or ()
    index = record.predicted_class
    return {
        "id": record.id,
        "request_id": record.request_id,
        "created_at": record.created_at,
        "probability": record.probability,
        "band": None if multiclass else band(record.probability, thresholds),
        "predicted_class": None
        if index is None
        else (names[index] if index < len(names) else str(index)),
        "class_index": index,
        "class_probabilities": None
        if record.class_probabilities is None
        else {
            (names[i] if i < len(names) else str(i)): p
            for i, p in enumerate(record.class_probabilities)
        },
        "model_version": record.model_version,
        "slot": record.slot,
        "latency_ms": record.latency_ms,
        "explanation": record.explanation,
    }


def _event_time(instance: dict[str, Any], field: str | None) -> datetime | None:
    """When the predicted event happens: the request's time field (validated, with its
    offset), in UTC; None when the task has none."""
    if field is None or instance.get(field) is None:
        return None
    return datetime.fromisoformat(str(instance[field])).astimezone(UTC)


def _report(window: dict[str, Any]) -> MonitoringReport:
    """A window's summary (``windows.jsonl``) as the API shows it."""
    quality, drift = window.get("quality") or {}, window.get("drift") or {}
    return MonitoringReport(
        window=window["window"],
        start=window["start"],
        end=window["end"],
        url=f"/reports/{window['report']}",
        drift_url=f"/reports/{window['drift_report']}" if window.get("drift_report") else None,
        rows=window["rows"],
        labelled=window["labelled"],
        roc_auc=quality.get("roc_auc"),
        roc_auc_low=quality.get("roc_auc_low"),
        roc_auc_high=quality.get("roc_auc_high"),
        holdout_roc_auc=window.get("holdout_roc_auc"),
        accuracy=quality.get("accuracy"),
        accuracy_low=quality.get("accuracy_low"),
        accuracy_high=quality.get("accuracy_high"),
        macro_f1=quality.get("macro_f1"),
        holdout_accuracy=window.get("holdout_accuracy"),
        drift_share=drift.get("share"),
        features=drift.get("features", []),
    )


def _item(
    view: "PredictionView", thresholds: tuple[float, float], classes: tuple[str, ...] | None
) -> PredictionItem:
    feedback = view.feedback
    return PredictionItem(
        **_prediction_json(view.record, thresholds, classes),
        request=view.record.request,
        features=view.record.features,
        feedback=None
        if feedback is None
        else FeedbackOut(
            label=feedback.label, source=feedback.source, created_at=feedback.created_at
        ),
    )


def create_app(settings: "Settings", *, store: "AppStore | None" = None) -> FastAPI:
    """The app for ``settings`` (its task, database, serving endpoint and admin token)."""
    from e2eai.app.request_kinds import request_kind
    from e2eai.app.spool import RecordWriter
    from e2eai.app.store import (
        AppStore,
        DatabaseUnavailable,
        FeedbackRecord,
        InvalidRecord,
        PredictionRecord,
    )
    from e2eai.tasks import load_task

    task = load_task(settings)
    store = store or AppStore.from_settings(settings)
    metrics = Metrics()
    digest = token_digest(admin_token(settings))
    thresholds = settings.app.band_thresholds
    kind = request_kind(task, settings.app.explanation_features)
    classes = kind.classes
    Request_ = kind.request_model()
    max_batch = settings.app.max_batch
    time_field = task.request_time_field

    class PredictionsIn(BaseModel):
        """One request (``request``) or a batch (``requests``), not both."""

        model_config = {"extra": "forbid"}
        request: Request_ | None = None  # type: ignore[valid-type]
        requests: list[Request_] | None = Field(  # type: ignore[valid-type]
            None, min_length=1, max_length=max_batch
        )

        @model_validator(mode="after")
        def _one_of(self) -> "PredictionsIn":
            if (self.request is None) == (self.requests is None):
                raise ValueError("give either 'request' (one) or 'requests' (a batch)")
            return self

    PredictionsIn.__name__ = f"{Request_.__name__}s"
    # Binary tasks take 0/1 labels; multi-class ones a class's name or index.
    FeedbackLabelIn: type[BaseModel] = FeedbackIn
    FeedbackBatchCapped: type[BaseModel] = feedback_batch_model(settings.app.max_feedback_batch)
    if classes is not None:
        FeedbackLabelIn, FeedbackBatchCapped = multiclass_feedback_models(
            classes, settings.app.max_feedback_batch
        )
    writer = RecordWriter(store, settings.home / "app" / "spool")
    serving = ServingClient(settings)

    migrated = threading.Event()
    stopping = threading.Event()

    def migrate_when_reachable() -> None:
        # The database may be down when the app starts: predictions are answered and
        # spooled meanwhile, and the schema is brought up to date as soon as it is back.
        while not stopping.is_set():
            try:
                store.migrate()
            except DatabaseUnavailable as exc:
                log.warning("app database unavailable, retrying its migration: %s", exc)
                stopping.wait(2.0)
                continue
            migrated.set()
            writer.start()
            return

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        migrator = threading.Thread(target=migrate_when_reachable, name="e2eai-app-migrate")
        migrator.start()
        await run_in_threadpool(migrator.join, 10.0)  # usually done at once
        try:
            yield
        finally:
            stopping.set()
            migrator.join()
            writer.close()
            await serving.close()
            store.close()

    app = FastAPI(
        title=f"e2eai — {task.name}",
        description=task.description,
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served below from the vendored Swagger UI: nothing from a CDN
        responses=_ERRORS,  # type: ignore[arg-type]
    )

    def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if not matches_digest(authorization, digest):
            raise ApiError(401, "missing or wrong admin token (Authorization: Bearer <token>)")

    Admin = Annotated[None, Depends(require_admin)]

    def actor(request: Request) -> str:
        client = request.client.host if request.client else "?"
        return f"api ({client})"

    # -- errors ------------------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        body = ErrorBody(error=str(exc), field=exc.field)
        return JSONResponse(body.model_dump(), status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (an unreadable body, an unknown route, a wrong method) in
        # the API's error shape.
        body = ErrorBody(error=str(exc.detail))
        return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = _field_path(tuple(first.get("loc", ())))
        message = str(first.get("msg", "invalid request"))
        body = ErrorBody(error=f"{field}: {message}" if field else message, field=field)
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        reference = uuid.uuid4().hex[:12]
        log.exception("internal error %s", reference)
        return JSONResponse(
            {"error": f"internal error (reference {reference})", "field": None}, status_code=500
        )

    # -- the task and predictions --------------------------------------------------------------

    @app.get("/api/task", response_model=TaskInfo, tags=["predictions"])
    async def get_task() -> TaskInfo:
        """The task: its modality, classes and what a prediction request carries."""
        return _task_info(task, kind)

    @app.post("/api/predictions", response_model=Predictions, tags=["predictions"])
    async def predict(body: PredictionsIn) -> Response:
        """Predict for one request or a batch; every answer is stored."""
        single = body.request is not None
        items: list[BaseModel] = [body.request] if body.request is not None else body.requests or []
        paths = ["request"] if single else [f"requests[{i}]" for i in range(len(items))]
        try:
            # Decoding an image takes a few milliseconds: off the event loop.
            requests = await run_in_threadpool(kind.to_serving, items, paths)
        except InvalidInferenceRequest as exc:
            raise ApiError(413 if exc.status == 413 else 422, str(exc), exc.field) from None
        instances = [r.instance for r in requests]
        request_id = uuid.uuid4().hex
        try:
            served = await serving.predict(instances, request_id)
        except ServingRejected as exc:
            raise ApiError(
                exc.status if exc.status < 500 else 400, str(exc), _request_field(exc, paths)
            ) from None
        except ServingUnavailable as exc:
            raise ApiError(503, str(exc)) from None
        try:
            answers = [
                kind.answer(probability, features, explanation)
                for probability, features, explanation in zip(
                    served.probabilities, served.features, served.explanations, strict=True
                )
            ]
        except ValueError as exc:  # a model that does not fit the task
            raise ApiError(503, f"serving answered for another task: {exc}") from None
        now = datetime.now(UTC)
        records = [
            PredictionRecord(
                id=uuid.uuid4().hex,
                request_id=request_id,
                created_at=now,
                task=task.name,
                model_name=settings.serving.model_name,
                model_version=served.model_version,
                slot=served.slot,
                request=request.stored,
                probability=answer.probability,
                latency_ms=served.latency_ms,
                request_row=row,
                event_time=_event_time(request.instance, time_field),
                features=features,
                explanation=answer.explanation,
                predicted_class=answer.predicted_class,
                class_probabilities=answer.class_probabilities,
            )
            for row, (request, answer, features) in enumerate(
                zip(requests, answers, served.features, strict=True)
            )
        ]
        write = writer.write if migrated.is_set() else writer.spool
        await run_in_threadpool(write, records)
        metrics.predictions.labels(served.model_version, served.slot).inc(len(records))
        # Serialised here, not re-validated by FastAPI: the records are the app's own, and a
        # batch's explanations made model validation the largest part of the app's time.
        # The schema test (schemathesis) checks the answers against ``Predictions``.
        answer = {"predictions": [_prediction_json(r, thresholds, classes) for r in records]}
        return Response(orjson.dumps(answer, option=orjson.OPT_UTC_Z), media_type=_JSON)

    @app.get("/api/predictions", response_model=PredictionPage, tags=["predictions"])
    async def list_predictions(
        since: datetime | None = None,
        until: datetime | None = None,
        model_version: Annotated[str | None, Query(max_length=64)] = None,
        slot: Annotated[str | None, Query(pattern="^(stable|canary)$")] = None,
        has_feedback: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> PredictionPage:
        """Stored predictions, newest first, with their feedback."""
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise ApiError(422, f"{name}: give a time zone (e.g. Z)", name)
        try:
            page = await run_in_threadpool(
                store.list_predictions,
                since=since,
                until=until,
                model_version=model_version,
                slot=slot,
                has_feedback=has_feedback,
                limit=limit,
                cursor=cursor,
            )
        except DatabaseUnavailable as exc:
            raise ApiError(503, str(exc)) from None
        except ValueError as exc:  # a cursor the store did not issue
            raise ApiError(400, f"cursor: {exc}", "cursor") from None
        return PredictionPage(
            items=[_item(v, thresholds, classes) for v in page.items],
            total=page.total,
            next_cursor=page.next_cursor,
        )

    @app.get(
        "/api/predictions/{prediction_id}", response_model=PredictionItem, tags=["predictions"]
    )
    async def get_prediction(prediction_id: str) -> PredictionItem:
        try:
            view = await run_in_threadpool(store.get_prediction, prediction_id[:64])
        except DatabaseUnavailable as exc:
            raise ApiError(503, str(exc)) from None
        if view is None:
            raise ApiError(404, f"no prediction {prediction_id[:64]!r}", "prediction_id")
        return _item(view, thresholds, classes)

    async def record_feedback(records: list["FeedbackRecord"]) -> list["FeedbackOutcome"]:
        """Store labels in one transaction, count them by outcome, and forward the stored
        ones to the router."""
        try:
            outcomes = await run_in_threadpool(store.add_feedback_many, records)
        except DatabaseUnavailable as exc:
            raise ApiError(503, f"{exc}: the feedback was not stored, send it again") from None
        except InvalidRecord as exc:  # a prediction of another task (another class count)
            raise ApiError(422, f"label: {exc}", "label") from None
        for status, count in collections.Counter(o.status for o in outcomes).items():
            metrics.feedback.labels(status).inc(count)
        await _forward_feedback(settings, outcomes)
        return outcomes

    @app.post(
        "/api/predictions/{prediction_id}/feedback",
        response_model=FeedbackStatus,
        tags=["predictions"],
    )
    async def feedback(
        prediction_id: str,
        body: FeedbackLabelIn,  # type: ignore[valid-type]
        _: Admin,
    ) -> FeedbackStatus:
        """The actual outcome of a prediction (admin token): 0/1, or for a multi-class task
        the class's name or index; the same label twice is stored once, a different second
        label is a 409."""
        label_in: FeedbackIn = body  # type: ignore[assignment]
        record = FeedbackRecord(
            prediction_id=prediction_id[:64],
            label=label_in.label,
            source=label_in.source,
            created_at=datetime.now(UTC),
        )
        (outcome,) = await record_feedback([record])
        if outcome.status == "unknown":
            raise ApiError(404, f"no prediction {prediction_id[:64]!r}", "prediction_id")
        if outcome.status == "conflict":
            raise ApiError(409, str(outcome.refusal()), "label")
        return FeedbackStatus(status="stored" if outcome.status == "stored" else "duplicate")

    @app.post("/api/feedback", response_model=FeedbackBatchStatus, tags=["predictions"])
    async def feedback_batch(
        body: FeedbackBatchCapped,  # type: ignore[valid-type]
        _: Admin,
    ) -> FeedbackBatchStatus:
        """Many actual outcomes at once (admin token), stored in one transaction. Each label
        is reported, in the order sent: stored, a duplicate of the stored label, in conflict
        with it (the stored label is kept), or for an unknown prediction; only a database
        outage (503) stores none of them."""
        batch: FeedbackBatchIn = body  # type: ignore[assignment]
        now = datetime.now(UTC)
        records = [
            FeedbackRecord(
                prediction_id=item.prediction_id,
                label=item.label,
                source=batch.source,
                created_at=now,
            )
            for item in batch.items
        ]
        outcomes = await record_feedback(records)
        counts = collections.Counter(o.status for o in outcomes)
        return FeedbackBatchStatus(
            stored=counts["stored"],
            duplicate=counts["duplicate"],
            conflict=counts["conflict"],
            unknown=counts["unknown"],
            items=[
                FeedbackItemStatus(prediction_id=o.prediction_id, status=o.status) for o in outcomes
            ],
        )

    # -- models, rollout, monitoring -----------------------------------------------------------

    @app.get("/api/models", response_model=Models, tags=["models"])
    async def models() -> Models:
        """Registered versions of the served model: stages, metrics, lineage, history."""

        def read() -> list[ModelInfo]:
            from e2eai.registry import ModelRegistry

            with ModelRegistry.from_settings(settings) as registry:
                versions = registry.list(settings.serving.model_name)
            return [
                ModelInfo(
                    version=v.version,
                    stage=str(v.stage.value if hasattr(v.stage, "value") else v.stage),
                    family=v.family,
                    metrics=v.metrics,
                    created_at=v.created_at,
                    lineage=v.lineage.model_dump(mode="json"),
                    transitions=[
                        {
                            "from_stage": None if t.from_stage is None else str(t.from_stage),
                            "to_stage": str(t.to_stage),
                            "reason": t.reason,
                            "at": t.at,
                        }
                        for t in v.transitions
                    ],
                )
                for v in reversed(versions)
            ]

        return Models(models=await run_in_threadpool(read))

    @app.get("/api/rollout", response_model=RolloutInfo, tags=["rollout"])
    async def rollout() -> RolloutInfo:
        """What serves now: the traffic split, health, and the canary decisions."""
        return await run_in_threadpool(_rollout_info, settings)

    async def _act(
        action: str, reason: str, request: Request, call: Any, *args: Any
    ) -> RolloutInfo:
        from e2eai.serving.local import LocalServing

        who = actor(request)
        manager = LocalServing(settings, actor=who)
        outcome, error = "done", ""
        try:
            await run_in_threadpool(getattr(manager, call), *args)
        except E2eaiError as exc:
            outcome, error = "refused", str(exc)
        with contextlib.suppress(DatabaseUnavailable):
            await run_in_threadpool(
                lambda: store.add_audit(
                    actor=who,
                    action=action,
                    outcome=outcome,
                    reason=reason,
                    detail={"args": [str(a) for a in args], "error": error},
                )
            )
        if error:
            raise ApiError(409, error)
        return await run_in_threadpool(_rollout_info, settings)

    @app.post("/api/rollout/canary", response_model=RolloutInfo, tags=["rollout"])
    async def canary(body: CanaryIn, _: Admin, request: Request) -> RolloutInfo:
        """Deploy a registry version as the canary at ``percent`` % (admin token)."""
        from e2eai.serving.rollout import ModelSource

        source = ModelSource.from_registry(body.version)
        return await _act(
            "deploy", body.reason or f"canary at {body.percent}%", request, "deploy", source,
            body.percent,
        )  # fmt: skip

    @app.post("/api/rollout/promote", response_model=RolloutInfo, tags=["rollout"])
    async def promote(body: ReasonIn, _: Admin, request: Request) -> RolloutInfo:
        """Give the canary all traffic (admin token)."""
        reason = f"promoted by hand: {body.reason or 'no reason given'}"
        return await _act("promote", reason, request, "promote", reason)

    @app.post("/api/rollout/rollback", response_model=RolloutInfo, tags=["rollout"])
    async def rollback(body: ReasonIn, _: Admin, request: Request) -> RolloutInfo:
        """Give stable all traffic back (admin token)."""
        reason = f"rolled back by hand: {body.reason or 'no reason given'}"
        return await _act("rollback", reason, request, "rollback", reason)

    @app.get("/api/audit", tags=["rollout"])
    async def audit(_: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
        """Admin actions and decisions, newest first (admin token)."""
        try:
            return {"records": await run_in_threadpool(store.list_audit, limit)}
        except DatabaseUnavailable as exc:
            raise ApiError(503, str(exc)) from None

    @app.get("/api/monitoring/reports", response_model=MonitoringReports, tags=["monitoring"])
    async def monitoring_reports() -> MonitoringReports:
        """Monitoring windows, newest first, with their figures and reports (none until
        `e2eai monitor` has run)."""
        from e2eai.monitoring.monitor import window_summaries

        summaries = await run_in_threadpool(window_summaries, settings)
        return MonitoringReports(reports=[_report(w) for w in reversed(summaries)])

    # -- operations ----------------------------------------------------------------------------

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        database = migrated.is_set() and await run_in_threadpool(store.ping)
        served = await serving.ready()
        status = 200 if database and served else 503
        return JSONResponse({"database": database, "serving": served}, status_code=status)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )
    async def prometheus() -> Response:
        metrics.spool_depth.set(writer.depth)
        return Response(generate_latest(metrics.registry), media_type="text/plain; version=0.0.4")

    reports = settings.home / "monitoring" / "reports"
    app.mount("/reports", StaticFiles(directory=reports, check_dir=False), name="reports")
    if (STATIC / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/docs", include_in_schema=False)
        async def docs() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{app.title} - API docs",
                swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
                swagger_favicon_url="data:,",
            )

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    app.add_middleware(Timing, metrics=metrics)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit, limit=settings.app.max_body_bytes)  # type: ignore[arg-type]
    if settings.app.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,  # type: ignore[arg-type]
            allow_origins=list(settings.app.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.state.store = store
    app.state.writer = writer
    app.state.metrics = metrics
    return app


def _request_field(exc: ServingRejected, paths: Sequence[str]) -> str | None:
    """Serving's field (``image``, ``distance``) as the API's (``request.image``,
    ``requests[3].text``: a batch's row is in serving's message, "row 3: …")."""
    if not exc.field:
        return None
    if len(paths) == 1:
        return f"{paths[0]}.{exc.field}"
    row = _SERVING_ROW.search(str(exc))
    if row is not None and int(row.group(1)) < len(paths):
        return f"{paths[int(row.group(1))]}.{exc.field}"
    return exc.field


def _rollout_info(settings: "Settings") -> RolloutInfo:
    from e2eai.errors import ServingError
    from e2eai.serving.local import LocalServing

    if settings.app.serving_url:
        return RolloutInfo(serving=True, endpoint=settings.app.serving_url)
    try:
        described = LocalServing(settings).describe()
    except ServingError:
        return RolloutInfo(serving=False)
    health = {b["slot"]: b for b in described["router"]["backends"]}

    def slot(name: str) -> SlotInfo | None:
        backend = described.get(name)
        if backend is None:
            return None
        return SlotInfo(
            version=backend["version"],
            weight=backend["weight"],
            healthy=bool(health.get(name, {}).get("healthy")),
        )

    return RolloutInfo(
        serving=True,
        endpoint=described["endpoint"],
        stable=slot("stable"),
        canary=slot("canary"),
        decisions=[DecisionInfo.model_validate(d) for d in described["decisions"]],
    )


async def _forward_feedback(settings: "Settings", outcomes: Sequence["FeedbackOutcome"]) -> None:
    """Stored labels also go to the local router, in one call: its canary analysis joins
    them by request id and row (a batch's predictions share the request id and may be
    labelled one by one, or all at once).

    The app database is the record; the router's copy is best effort.
    """
    if settings.app.serving_url:
        return
    by_request: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        if outcome.status != "stored" or outcome.request_id is None:
            continue
        entry = by_request.setdefault(
            outcome.request_id, {"request_id": outcome.request_id, "labels": [], "rows": []}
        )
        entry["labels"].append(outcome.label)
        entry["rows"].append(outcome.request_row)
    if not by_request:
        return
    from e2eai.errors import ServingError
    from e2eai.serving.local import LocalServing

    with contextlib.suppress(ServingError, OSError):
        await run_in_threadpool(LocalServing(settings).feedback, list(by_request.values()))
