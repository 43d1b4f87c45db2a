"""The app's records in its SQL database: predictions, their feedback labels, the audit log.

SQLite by default (WAL, so readers never block the writer), PostgreSQL by URL (psycopg).
The schema comes from the Alembic migrations (``AppStore.migrate``); every method that
cannot reach the database raises ``DatabaseUnavailable``, which ``RecordWriter`` answers
by spooling.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from alembic import command
from sqlalchemy import Connection, Engine, and_, create_engine, func, insert, or_, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from e2eai.app.migrations import alembic_config
from e2eai.app.tables import AuditRow, Base, FeedbackRow, PredictionRow
from e2eai.errors import E2eaiError
from e2eai.jsonable import to_jsonable
from e2eai.registry.tables import utc_now
from e2eai.sqlite import WRITE_TRANSACTION, tune_sqlite

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from e2eai.config import Settings

# How long a PostgreSQL connection attempt may take before the database counts as down
# (unless the URL sets connect_timeout itself).
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
# Concurrent `migrate` calls (several workers starting at once) take turns on this lock.
_MIGRATION_LOCK_KEY = 0xE2EA_0001
MAX_PAGE_SIZE = 1000
# Ids per `IN (...)` lookup: far below SQLite's (32766) and PostgreSQL's (65535) parameter
# limits, so a batch of any size is looked up in a few statements.
IDS_PER_LOOKUP = 10_000

# sqlite3 raises OperationalError for schema and SQL mistakes too: only these mean "down".
_SQLITE_UNAVAILABLE = ("unable to open database file", "database is locked", "disk i/o error")


@dataclass(frozen=True)
class PredictionRecord:
    """One answered prediction, as the app stores it."""

    id: str  # app-generated (uuid4 hex), primary key
    request_id: str  # x-request-id sent to serving
    created_at: datetime  # tz-aware UTC
    task: str
    model_name: str
    model_version: str
    slot: str  # "stable" | "canary" | "" if unknown
    request: dict[str, Any]  # the request fields as the client sent them
    probability: float
    latency_ms: float
    request_row: int = 0  # its row in the serving request (batches share the request id)
    features: dict[str, Any] | None = None  # model inputs used (after enrichment)
    event_time: datetime | None = None  # when the predicted event happens; None: created_at
    explanation: dict[str, Any] | None = None  # {"base_value", "contributions": [...]}
    # Multi-class tasks: the predicted class and every class's probability (task order);
    # ``probability`` is then the predicted class's. None for binary tasks.
    predicted_class: int | None = None
    class_probabilities: list[float] | None = None

    @property
    def classes(self) -> int:
        """How many labels its feedback may take: 2 (binary) or the task's K classes."""
        return 2 if self.class_probabilities is None else len(self.class_probabilities)

    def __post_init__(self) -> None:
        if self.event_time is None:  # an event without its own time happens when asked
            object.__setattr__(self, "event_time", self.created_at)


@dataclass(frozen=True)
class LoggedPrediction:
    """One row of the prediction log as monitoring reads it."""

    id: str
    event_time: datetime
    model_version: str
    slot: str
    probability: float
    features: dict[str, Any] | None
    label: int | None  # None until feedback arrives
    request: dict[str, Any] | None = None  # what was asked (an image task's PNG, a message)
    predicted_class: int | None = None  # multi-class tasks: the answer's class …
    class_probabilities: list[float] | None = None  # … and every class's probability


@dataclass(frozen=True)
class FeedbackRecord:
    """The ground-truth label given for one prediction."""

    prediction_id: str
    label: int  # 0 | 1, or a multi-class prediction's class index 0…K-1
    source: str  # e.g. "api", "ui", "replay"
    created_at: datetime


FeedbackStatusName = Literal["stored", "duplicate", "conflict", "unknown"]


@dataclass(frozen=True)
class FeedbackOutcome:
    """What became of one label of a feedback batch, with what forwarding it needs.

    ``stored``: the label is now the prediction's; ``duplicate``: it already was;
    ``conflict``: the prediction already has the other label (``stored_label``), which is
    kept; ``unknown``: no prediction has the id.
    """

    prediction_id: str
    label: int  # the label sent
    status: FeedbackStatusName
    stored_label: int | None  # the prediction's label after the batch; None: unknown id
    request_id: str | None  # the prediction's serving request (None: unknown id) …
    request_row: int | None  # … and its row in it, where the router joins the label

    def refusal(self) -> FeedbackConflict | UnknownPrediction | None:
        """The error a single-label caller raises for this outcome; None if it was kept."""
        if self.status == "unknown":
            return UnknownPrediction(self.prediction_id)
        if self.status == "conflict":
            assert self.stored_label is not None
            return FeedbackConflict(self.prediction_id, stored=self.stored_label, sent=self.label)
        return None


@dataclass(frozen=True)
class PredictionView:
    """A stored prediction with its feedback, if any has been given."""

    record: PredictionRecord
    feedback: FeedbackRecord | None


@dataclass(frozen=True)
class Page:
    """One page of predictions, newest first."""

    items: list[PredictionView]
    total: int  # rows matching the filters, over all pages
    next_cursor: str | None  # pass back as `cursor` for the next (older) page


class FeedbackConflict(E2eaiError):
    """The prediction already has a different feedback label (labels are never changed)."""

    def __init__(self, prediction_id: str, stored: int, sent: int) -> None:
        self.prediction_id = prediction_id
        self.stored = stored
        self.sent = sent
        super().__init__(
            f"prediction {prediction_id} already has feedback label {stored}; "
            f"label {sent} conflicts with it (a stored label is never changed)"
        )


class UnknownPrediction(E2eaiError, LookupError):
    """No stored prediction has this id."""

    def __init__(self, prediction_id: str) -> None:
        self.prediction_id = prediction_id
        super().__init__(f"no prediction with id {prediction_id!r} is stored")


class DatabaseUnavailable(E2eaiError):
    """The app database cannot be reached (down, restarting, locked for too long)."""


class InvalidRecord(E2eaiError, ValueError):
    """A record the store refuses: naive timestamp, label that is not one of the prediction's
    classes, non-JSON detail."""


class InvalidQuery(E2eaiError, ValueError):
    """A listing query the store cannot answer: bad limit, naive bound, foreign cursor."""


class AppStore:
    """The app's predictions, feedback and audit log in the database at SQLAlchemy ``url``.

    Nothing connects until a method needs the database, so the app can start while the
    database is down. Safe to use from several threads and processes at once.
    """

    def __init__(self, url: str) -> None:
        self.engine: Engine = _create_app_engine(url)
        self._writer = self.engine.execution_options(**{WRITE_TRANSACTION: True})
        self._shown_url = self.engine.url.render_as_string(hide_password=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> AppStore:
        """The store at ``settings.app.database_url`` (SQLite at ``<home>/app.db`` if unset)."""
        url = settings.app.database_url
        if url is None:  # Settings fills it in; a hand-made AppSettings may not
            url = f"sqlite:///{settings.home / 'app.db'}"
        return cls(url)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> AppStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- schema and health -------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest migration (``alembic upgrade head``); idempotent."""
        with self._reachable(), self._writer.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), "head")

    def ping(self) -> bool:
        """Whether the database answers ``SELECT 1`` right now."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except (sa_exc.DBAPIError, sa_exc.TimeoutError):
            return False
        return True

    # -- predictions -------------------------------------------------------------------------

    def add_predictions(self, records: Sequence[PredictionRecord]) -> int:
        """Store ``records`` in one transaction; ids already stored are skipped.

        Returns how many were new. Replaying the same records (a spool drained twice, a
        commit whose acknowledgement was lost) therefore stores each exactly once.
        """
        rows: dict[str, dict[str, Any]] = {}
        for record in records:
            rows.setdefault(record.id, _prediction_values(record))
        if not rows:
            return 0
        insert_new = (
            self._insert(PredictionRow)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(PredictionRow.id)
        )
        with self._reachable(), self._writer.begin() as connection:
            return len(connection.execute(insert_new, list(rows.values())).all())

    def get_prediction(self, prediction_id: str) -> PredictionView | None:
        """The prediction with this id and its feedback; None if there is none."""
        query = _with_feedback().where(PredictionRow.id == prediction_id)
        with self._reachable(), Session(self.engine) as session:
            found = session.execute(query).first()
            return None if found is None else _to_view(found[0], found[1])

    def list_predictions(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        model_version: str | None = None,
        slot: str | None = None,
        has_feedback: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Predictions matching every given filter, newest first, ``limit`` per page.

        ``since`` is inclusive, ``until`` exclusive. Pages are keyed on (created_at, id), so
        rows stored while a client pages through never make it see a row twice or skip one.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidQuery(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}")
        filters: list[ColumnElement[bool]] = []
        if since is not None:
            filters.append(PredictionRow.created_at >= _aware_bound("since", since))
        if until is not None:
            filters.append(PredictionRow.created_at < _aware_bound("until", until))
        if model_version is not None:
            filters.append(PredictionRow.model_version == model_version)
        if slot is not None:
            filters.append(PredictionRow.slot == slot)
        if has_feedback is not None:
            has = FeedbackRow.prediction_id.is_not(None)
            filters.append(has if has_feedback else FeedbackRow.prediction_id.is_(None))
        page_filters = list(filters)
        if cursor is not None:
            after_at, after_id = _decode_cursor(cursor)
            page_filters.append(
                or_(
                    PredictionRow.created_at < after_at,
                    and_(PredictionRow.created_at == after_at, PredictionRow.id < after_id),
                )
            )
        count = (
            select(func.count())
            .select_from(PredictionRow)
            .outerjoin(FeedbackRow, FeedbackRow.prediction_id == PredictionRow.id)
            .where(*filters)
        )
        page = (
            _with_feedback()
            .where(*page_filters)
            .order_by(PredictionRow.created_at.desc(), PredictionRow.id.desc())
            .limit(limit + 1)  # one more than asked: is there a next page?
        )
        with self._reachable(), Session(self.engine) as session:
            total = session.scalar(count) or 0
            found = session.execute(page).all()
            items = [_to_view(row, feedback) for row, feedback in found[:limit]]
        next_cursor = None
        if len(found) > limit:
            last = items[-1].record
            next_cursor = _encode_cursor(last.created_at, last.id)
        return Page(items=items, total=total, next_cursor=next_cursor)

    # -- feedback ----------------------------------------------------------------------------

    def add_feedback(self, record: FeedbackRecord) -> Literal["stored", "duplicate"]:
        """Store the label of a prediction; the same label again is a harmless duplicate.

        Raises UnknownPrediction if no prediction has the id, FeedbackConflict if a
        different label is already stored.
        """
        (outcome,) = self.add_feedback_many([record])
        refusal = outcome.refusal()
        if refusal is not None:
            raise refusal
        return "stored" if outcome.status == "stored" else "duplicate"

    def add_feedback_many(self, records: Sequence[FeedbackRecord]) -> list[FeedbackOutcome]:
        """Store many labels in one transaction; one outcome per record, in order.

        Labels of unknown predictions and labels that conflict with a stored one are
        reported, not raised, and the rest are stored: a stored label is never changed. A
        prediction labelled twice in the batch keeps its first label (the second is a
        duplicate or a conflict). Raises InvalidRecord, storing nothing, if any record is
        invalid (a label other than 0/1 — or, for a multi-class prediction, other than one of
        its class indices —, a naive timestamp).
        """
        values = [_feedback_values(record) for record in records]
        if not values:
            return []
        ids = list(dict.fromkeys(v["prediction_id"] for v in values))
        insert_new = (
            self._insert(FeedbackRow)
            .on_conflict_do_nothing(index_elements=["prediction_id"])
            .returning(FeedbackRow.prediction_id)
        )
        with self._reachable(), self._writer.begin() as connection:
            # Look up first: a label of an unknown prediction would break the foreign key.
            known = _labelled_predictions(connection, ids)
            for value in values:  # raising here rolls the transaction back: nothing stored
                found = known.get(value["prediction_id"])
                if found is not None:
                    _check_label_class(value["prediction_id"], value["label"], found.classes)
            new: dict[str, dict[str, Any]] = {}
            for value in values:
                pid = value["prediction_id"]
                if pid in known and known[pid].label is None:
                    new.setdefault(pid, value)
            inserted: set[str] = set()
            if new:
                # In id order: two batches sharing ids then wait for each other, never deadlock.
                rows = [new[pid] for pid in sorted(new)]
                inserted = set(connection.execute(insert_new, rows).scalars())
            raced = [pid for pid in new if pid not in inserted]
            if raced:  # PostgreSQL: another writer labelled them since the lookup
                known.update(_labelled_predictions(connection, raced))
        labels = {pid: found.label for pid, found in known.items()}
        outcomes = []
        for value in values:
            pid, label = value["prediction_id"], value["label"]
            found = known.get(pid)
            if found is None:
                status: FeedbackStatusName = "unknown"
            elif pid in inserted:
                inserted.discard(pid)  # its first label in the batch is the one stored
                labels[pid] = label
                status = "stored"
            else:
                status = "duplicate" if labels[pid] == label else "conflict"
            outcomes.append(
                FeedbackOutcome(
                    prediction_id=pid,
                    label=label,
                    status=status,
                    stored_label=labels.get(pid),
                    request_id=None if found is None else found.request_id,
                    request_row=None if found is None else found.request_row,
                )
            )
        return outcomes

    # -- audit -------------------------------------------------------------------------------

    def add_audit(
        self, *, actor: str, action: str, outcome: str, reason: str, detail: Mapping[str, Any]
    ) -> None:
        """Record one decision or control action, stamped now."""
        try:
            plain_detail = to_jsonable(dict(detail))
        except TypeError as exc:
            raise InvalidRecord(f"audit detail of {action!r} is not JSON: {exc}") from exc
        row = {
            "at": utc_now(),
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "reason": reason,
            "detail": plain_detail,
        }
        with self._reachable(), self._writer.begin() as connection:
            connection.execute(insert(AuditRow).values(row))

    def list_audit(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` audit entries, newest first."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidQuery(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}")
        query = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
        with self._reachable(), Session(self.engine) as session:
            return [
                {
                    "at": row.at,
                    "actor": row.actor,
                    "action": row.action,
                    "outcome": row.outcome,
                    "reason": row.reason,
                    "detail": row.detail,
                }
                for row in session.scalars(query)
            ]

    def prediction_log(self, since: datetime, until: datetime) -> list[LoggedPrediction]:
        """Every prediction whose event happens in [since, until), oldest first, with its
        label when feedback arrived: what monitoring reads."""
        query = (
            select(
                PredictionRow.id,
                PredictionRow.event_time,
                PredictionRow.model_version,
                PredictionRow.slot,
                PredictionRow.probability,
                PredictionRow.features,
                FeedbackRow.label,
                PredictionRow.request,
                PredictionRow.predicted_class,
                PredictionRow.class_probabilities,
            )
            .outerjoin(FeedbackRow, FeedbackRow.prediction_id == PredictionRow.id)
            .where(
                PredictionRow.event_time >= _aware_bound("since", since),
                PredictionRow.event_time < _aware_bound("until", until),
            )
            .order_by(PredictionRow.event_time, PredictionRow.id)
        )
        with self._reachable(), Session(self.engine) as session:
            return [LoggedPrediction(*row) for row in session.execute(query)]

    def event_time_range(self) -> tuple[datetime, datetime] | None:
        """(first, last) event time logged; None while nothing is."""
        query = select(func.min(PredictionRow.event_time), func.max(PredictionRow.event_time))
        with self._reachable(), Session(self.engine) as session:
            first, last = session.execute(query).one()
        if first is None:
            return None
        return _as_utc(first), _as_utc(last)

    def counts(self) -> dict[str, int]:
        """How many predictions and feedback labels are stored."""
        with self._reachable(), Session(self.engine) as session:
            return {
                "predictions": session.scalar(select(func.count()).select_from(PredictionRow)) or 0,
                "feedback": session.scalar(select(func.count()).select_from(FeedbackRow)) or 0,
            }

    # -- internals ---------------------------------------------------------------------------

    def _insert(self, table: type[Base]) -> postgresql.Insert | sqlite.Insert:
        # Both dialects' INSERT … ON CONFLICT DO NOTHING: idempotent inserts in one statement.
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn "cannot reach the database" errors into DatabaseUnavailable."""
        try:
            yield
        except sa_exc.TimeoutError as exc:
            raise DatabaseUnavailable(
                f"app database {self._shown_url}: no connection became free in time ({exc})"
            ) from exc
        except sa_exc.DBAPIError as exc:
            if not _is_unavailable(exc, self.engine.dialect.name):
                raise
            problem = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseUnavailable(
                f"app database {self._shown_url} is unavailable: {problem} "
                "(is the server running and app.database_url right?)"
            ) from exc


def _json_text(value: Any) -> str:
    """JSON columns as orjson writes them (the model inputs and explanations are most of a
    prediction's bytes; the stdlib encoder was most of the insert's time)."""
    return orjson.dumps(value).decode()


def _create_app_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise E2eaiError(f"app.database_url {url!r} is not a SQLAlchemy URL") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, json_serializer=_json_text)
        tune_sqlite(engine)
        return engine
    if backend == "postgresql":
        connect_args = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
        # pre-ping: connections that died with a restarted server are replaced, not used.
        return create_engine(
            parsed, pool_pre_ping=True, connect_args=connect_args, json_serializer=_json_text
        )
    raise E2eaiError(
        f"app.database_url {parsed.render_as_string(hide_password=True)!r}: the app stores "
        f"its records in SQLite or PostgreSQL, not {backend}"
    )


def _is_unavailable(exc: sa_exc.DBAPIError, dialect: str) -> bool:
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return False
    if dialect == "sqlite":
        message = str(exc.orig).lower()
        return any(problem in message for problem in _SQLITE_UNAVAILABLE)
    return True  # PostgreSQL: connection refused/lost, shutting down, starting up


@dataclass(frozen=True)
class _LabelledPrediction:
    request_id: str
    request_row: int
    label: int | None  # None: no feedback yet
    classes: int = 2  # labels it may take: 2, or a multi-class prediction's K


def _labelled_predictions(
    connection: Connection, ids: Sequence[str]
) -> dict[str, _LabelledPrediction]:
    """The stored predictions among ``ids``, with their feedback label if they have one."""
    found: dict[str, _LabelledPrediction] = {}
    for start in range(0, len(ids), IDS_PER_LOOKUP):
        query = (
            select(
                PredictionRow.id,
                PredictionRow.request_id,
                PredictionRow.request_row,
                FeedbackRow.label,
                PredictionRow.class_probabilities,
            )
            .outerjoin(FeedbackRow, FeedbackRow.prediction_id == PredictionRow.id)
            .where(PredictionRow.id.in_(ids[start : start + IDS_PER_LOOKUP]))
        )
        for pid, request_id, request_row, label, probabilities in connection.execute(query):
            classes = 2 if probabilities is None else len(probabilities)
            found[pid] = _LabelledPrediction(request_id, request_row, label, classes)
    return found


def _check_label_class(prediction_id: str, label: int, classes: int) -> None:
    """A label must be one of the prediction's classes (0/1 when it is binary)."""
    if label < classes:
        return
    allowed = "0 or 1" if classes == 2 else f"a class index 0…{classes - 1}"
    raise InvalidRecord(
        f"feedback label of prediction {prediction_id} must be {allowed}, not {label!r}"
    )


def _feedback_values(record: FeedbackRecord) -> dict[str, Any]:
    # The upper bound depends on the prediction (2, or its task's K classes): checked once
    # it is looked up; what no prediction allows is refused here.
    if isinstance(record.label, bool) or not isinstance(record.label, int) or record.label < 0:
        raise InvalidRecord(
            f"feedback label of prediction {record.prediction_id} must be 0 or 1 (a class "
            f"index 0…K-1 for a multi-class prediction), not {record.label!r}"
        )
    return {
        "prediction_id": record.prediction_id,
        "label": int(record.label),
        "source": record.source,
        "created_at": _aware_field("feedback created_at", record.created_at),
    }


def _with_feedback() -> Any:
    return select(PredictionRow, FeedbackRow).outerjoin(
        FeedbackRow, FeedbackRow.prediction_id == PredictionRow.id
    )


def _prediction_values(record: PredictionRecord) -> dict[str, Any]:
    try:
        request = to_jsonable(dict(record.request))
    except TypeError as exc:
        raise InvalidRecord(f"prediction {record.id}: not JSON: {exc}") from exc
    return {
        "id": record.id,
        "request_id": record.request_id,
        "created_at": _aware_field(f"prediction {record.id} created_at", record.created_at),
        "task": record.task,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "slot": record.slot,
        "request": request,
        "probability": float(record.probability),
        "latency_ms": float(record.latency_ms),
        "request_row": int(record.request_row),
        "event_time": _aware_field(f"prediction {record.id} event_time", record.event_time),
        # Parsed from the predictor's JSON answer (or the spool's): JSON already.
        "features": record.features,
        "explanation": record.explanation,
        "predicted_class": None if record.predicted_class is None else int(record.predicted_class),
        "class_probabilities": None
        if record.class_probabilities is None
        else [float(p) for p in record.class_probabilities],
    }


def _aware_field(what: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecord(f"{what} {value.isoformat()} is naive: give it a time zone (UTC)")
    return value


def _as_utc(value: datetime) -> datetime:
    """An aggregate's datetime (func.min/max skip the column type: SQLite gives it naive)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _aware_bound(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidQuery(f"{name}={value.isoformat()} is naive: give it a time zone (UTC)")
    return value


def _to_view(row: PredictionRow, feedback: FeedbackRow | None) -> PredictionView:
    return PredictionView(
        record=PredictionRecord(
            id=row.id,
            request_id=row.request_id,
            created_at=row.created_at,
            task=row.task,
            model_name=row.model_name,
            model_version=row.model_version,
            slot=row.slot,
            request=row.request,
            probability=row.probability,
            latency_ms=row.latency_ms,
            request_row=row.request_row,
            event_time=row.event_time,
            features=row.features,
            explanation=row.explanation,
            predicted_class=row.predicted_class,
            class_probabilities=row.class_probabilities,
        ),
        feedback=None
        if feedback is None
        else FeedbackRecord(
            prediction_id=feedback.prediction_id,
            label=feedback.label,
            source=feedback.source,
            created_at=feedback.created_at,
        ),
    )


def _encode_cursor(created_at: datetime, prediction_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), prediction_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, prediction_id = json.loads(raw)
        created_at = datetime.fromisoformat(at)
        if not isinstance(prediction_id, str) or created_at.tzinfo is None:
            raise ValueError("not a (time, id) pair")
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidQuery(
            f"cursor {cursor[:40]!r} is not one this API returned: pass back `next_cursor` "
            "as it came"
        ) from exc
    return created_at, prediction_id
