"""The app's store on real databases: SQLite (a file) and PostgreSQL (a throwaway server).

Migrations on an empty database (twice is a no-op) and in step with the ORM classes;
predictions stored once, found by every filter and paged without a row twice or missing;
feedback stored / duplicate / conflicting / for an unknown prediction, one at a time and in
batches (per-item outcomes, a few statements, concurrent batches never both storing a label);
the audit log;
timestamps tz-aware on both backends; an unreachable database is DatabaseUnavailable.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import JSON, bindparam, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from e2eai.app import store as app_store_module
from e2eai.app.migrations import alembic_config
from e2eai.app.store import (
    AppStore,
    DatabaseUnavailable,
    FeedbackConflict,
    FeedbackOutcome,
    FeedbackRecord,
    InvalidQuery,
    InvalidRecord,
    PredictionRecord,
    UnknownPrediction,
)
from e2eai.config import Settings
from e2eai.registry.tables import UTCDateTime

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2013, 6, 1, 12, 0, tzinfo=UTC)
APP_TABLES = {"predictions", "feedback", "audit", "alembic_version"}


def prediction(
    minute: float,
    *,
    model_version: str = "3",
    slot: str = "stable",
    prediction_id: str | None = None,
) -> PredictionRecord:
    return PredictionRecord(
        id=prediction_id or uuid.uuid4().hex,
        request_id=uuid.uuid4().hex,
        created_at=T0 + timedelta(minutes=minute),
        task="flights",
        model_name="flight-delay",
        model_version=model_version,
        slot=slot,
        request={"origin": "JFK", "dep_hour": 7, "distance": 1089.5, "tags": ["a", None]},
        probability=0.4375,
        latency_ms=3.25,
    )


def feedback(prediction_id: str, label: int, source: str = "api") -> FeedbackRecord:
    return FeedbackRecord(prediction_id, label, source, T0 + timedelta(days=1))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app' / 'app.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(database_url: str) -> Iterator[AppStore]:
    app_store = AppStore(database_url)
    app_store.migrate()
    try:
        yield app_store
    finally:
        app_store.close()


# -- migrations --------------------------------------------------------------------------------


def test_migrate_creates_the_schema_on_an_empty_database_and_twice_is_a_no_op(
    database_url: str,
) -> None:
    with AppStore(database_url) as store:
        assert APP_TABLES.isdisjoint(inspect(store.engine).get_table_names())
        store.migrate()
        assert set(inspect(store.engine).get_table_names()) >= APP_TABLES
        store.add_predictions([prediction(0)])

        store.migrate()

        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [
                ("0003",)
            ]
        assert store.counts() == {"predictions": 1, "feedback": 0}


def test_a_database_of_the_previous_revision_upgrades_with_its_rows(database_url: str) -> None:
    """0001 → 0002 adds the features/explanation columns; rows written before keep their
    values and read back with none."""
    with AppStore(database_url) as store:
        with store.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
            columns = {c["name"] for c in inspect(connection).get_columns("predictions")}
            assert "features" not in columns
            old = prediction(0)
            connection.execute(
                text(
                    "INSERT INTO predictions (id, request_id, created_at, task, model_name, "
                    "model_version, slot, request, probability, latency_ms) VALUES (:id, :rid, "
                    ":at, 'flights', 'm', '1', 'stable', :request, 0.25, 3.5)"
                ).bindparams(
                    # The column's own type formats the time (a driver-level datetime adapter
                    # that another library registered must not decide how it is stored).
                    bindparam("at", type_=UTCDateTime()),
                    bindparam("request", type_=JSON()),
                ),
                {
                    "id": old.id,
                    "rid": old.request_id,
                    "at": old.created_at,
                    "request": old.request,
                },
            )
        store.migrate()
        view = store.get_prediction(old.id)
        assert view is not None
        assert view.record.request == old.request and view.record.probability == 0.25
        assert view.record.features is None and view.record.explanation is None
        assert view.record.event_time == view.record.created_at  # filled in by the upgrade
        explained = PredictionRecord(
            **{
                **prediction(1).__dict__,
                "features": {"carrier": "UA", "temp": None},
                "explanation": {"base_value": -1.5, "contributions": [{"feature": "carrier"}]},
            }
        )
        store.add_predictions([explained])
        assert store.get_prediction(explained.id).record == explained


def test_orm_tables_match_the_migrations(store: AppStore) -> None:
    """`alembic check`: autogenerate finds nothing to add, drop or alter."""
    with store.engine.connect() as connection:
        command.check(alembic_config(connection))  # raises AutogenerateDiffsDetected


def test_migrations_downgrade_to_nothing_and_upgrade_again(store: AppStore) -> None:
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert not {"predictions", "feedback", "audit"} & set(inspect(store.engine).get_table_names())
    store.migrate()
    assert set(inspect(store.engine).get_table_names()) >= APP_TABLES


def test_from_settings_defaults_to_sqlite_in_home(tmp_path: Path) -> None:
    with AppStore.from_settings(Settings(home=tmp_path)) as store:
        store.migrate()
        assert store.engine.dialect.name == "sqlite"
        assert (tmp_path / "app.db").is_file()
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


# -- predictions -------------------------------------------------------------------------------


def test_a_prediction_round_trips_with_an_aware_utc_timestamp(store: AppStore) -> None:
    sent = prediction(0)
    # The same instant written in another time zone comes back equal, in UTC.
    sent = PredictionRecord(
        **{**sent.__dict__, "created_at": sent.created_at.astimezone(timezone(timedelta(hours=5)))}
    )
    assert store.add_predictions([sent]) == 1

    view = store.get_prediction(sent.id)

    assert view is not None and view.feedback is None
    assert view.record == sent
    assert view.record.created_at.utcoffset() == timedelta(0)
    assert store.get_prediction("no-such-id") is None


def test_timestamps_do_not_move_with_the_postgres_session_time_zone(postgres_url: str) -> None:
    with AppStore(postgres_url) as store:
        store.migrate()
        sent = prediction(0)
        store.add_predictions([sent])
    tokyo = make_url(postgres_url).update_query_dict({"options": "-c timezone=Asia/Tokyo"})
    with AppStore(tokyo.render_as_string(hide_password=False)) as store:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW timezone").scalar() == "Asia/Tokyo"
        view = store.get_prediction(sent.id)
    assert view is not None
    assert view.record.created_at == sent.created_at
    assert view.record.created_at.tzinfo is not None
    assert view.record.created_at.utcoffset() == timedelta(0)


def test_add_predictions_stores_each_id_once(store: AppStore) -> None:
    first, second, third = prediction(0), prediction(1), prediction(2)

    assert store.add_predictions([first, second, first]) == 2
    assert store.add_predictions([first, second, third]) == 1  # a replay: only third is new
    assert store.add_predictions([]) == 0

    assert store.counts() == {"predictions": 3, "feedback": 0}


def test_a_naive_timestamp_is_refused(store: AppStore) -> None:
    naive = PredictionRecord(**{**prediction(0).__dict__, "created_at": datetime(2013, 6, 1)})
    with pytest.raises(InvalidRecord, match="naive"):
        store.add_predictions([naive])
    with pytest.raises(InvalidQuery, match="since"):
        store.list_predictions(since=datetime(2013, 6, 1))


def test_list_predictions_filters(store: AppStore) -> None:
    records = [
        prediction(i, model_version=("3", "4")[i % 2], slot=("stable", "canary", "")[i % 3])
        for i in range(30)
    ]
    store.add_predictions(records)
    labelled = {r.id for r in records[::4]}
    for record_id in labelled:
        store.add_feedback(feedback(record_id, 1))

    def listed(**filters: object) -> list[str]:
        page = store.list_predictions(limit=100, **filters)  # type: ignore[arg-type]
        assert page.total == len(page.items) and page.next_cursor is None
        return [view.record.id for view in page.items]

    def expected(keep: object) -> list[str]:
        chosen = [r for r in records if keep(r)]  # type: ignore[operator]
        return [r.id for r in sorted(chosen, key=lambda r: r.created_at, reverse=True)]

    since, until = T0 + timedelta(minutes=5), T0 + timedelta(minutes=20)
    assert listed() == expected(lambda r: True)
    assert listed(since=since) == expected(lambda r: r.created_at >= since)
    assert listed(until=until) == expected(lambda r: r.created_at < until)
    assert listed(since=since, until=until) == expected(lambda r: since <= r.created_at < until)
    assert listed(model_version="4") == expected(lambda r: r.model_version == "4")
    assert listed(slot="canary") == expected(lambda r: r.slot == "canary")
    assert listed(slot="") == expected(lambda r: r.slot == "")
    assert listed(has_feedback=True) == expected(lambda r: r.id in labelled)
    assert listed(has_feedback=False) == expected(lambda r: r.id not in labelled)
    assert listed(model_version="3", slot="stable", has_feedback=True, since=since) == expected(
        lambda r: (
            r.model_version == "3"
            and r.slot == "stable"
            and r.id in labelled
            and r.created_at >= since
        )
    )
    assert listed(model_version="no-such-version") == []
    # The bounds are instants: the same one in another zone selects the same rows.
    assert listed(since=since.astimezone(timezone(timedelta(hours=-4)))) == listed(since=since)
    with_feedback = store.list_predictions(has_feedback=True, limit=1).items[0]
    assert with_feedback.feedback == feedback(with_feedback.record.id, 1)


def test_pages_through_three_pages_without_a_row_twice_or_missing(store: AppStore) -> None:
    # Groups of rows share a timestamp: the id breaks the tie, so no page boundary splits
    # them wrongly.
    records = [prediction(i // 3, model_version="3" if i % 5 else "4") for i in range(25)]
    store.add_predictions(records)

    seen: list[str] = []
    pages = []
    cursor = None
    while True:
        page = store.list_predictions(limit=10, cursor=cursor)
        assert page.total == (25 if not pages else 26)  # the total counts the newcomer
        pages.append(len(page.items))
        seen += [view.record.id for view in page.items]
        if len(pages) == 1:
            # A newer row arriving between pages must not shift the older pages.
            store.add_predictions([prediction(100)])
        cursor = page.next_cursor
        if cursor is None:
            break

    assert pages == [10, 10, 5]
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == {r.id for r in records}
    newest_first = sorted(records, key=lambda r: (r.created_at, r.id), reverse=True)
    assert seen == [r.id for r in newest_first]


def test_pages_with_a_filter(store: AppStore) -> None:
    records = [prediction(i, model_version="3" if i % 2 else "4") for i in range(21)]
    store.add_predictions(records)
    wanted = {r.id for r in records if r.model_version == "3"}

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = store.list_predictions(model_version="3", limit=4, cursor=cursor)
        assert page.total == len(wanted)
        seen += [view.record.id for view in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and set(seen) == wanted


@pytest.mark.parametrize("cursor", ["not-a-cursor", "W10", "WyJ4IiwgMV0"])
def test_a_cursor_the_store_did_not_issue_is_refused(store: AppStore, cursor: str) -> None:
    with pytest.raises(InvalidQuery, match="next_cursor"):
        store.list_predictions(cursor=cursor)


def test_a_limit_out_of_range_is_refused(store: AppStore) -> None:
    with pytest.raises(InvalidQuery, match="limit"):
        store.list_predictions(limit=0)


# -- feedback ----------------------------------------------------------------------------------


def test_feedback_stored_duplicate_conflict_and_unknown(store: AppStore) -> None:
    record = prediction(0)
    store.add_predictions([record])

    assert store.add_feedback(feedback(record.id, 1)) == "stored"
    assert store.add_feedback(feedback(record.id, 1, source="replay")) == "duplicate"
    with pytest.raises(FeedbackConflict) as conflict:
        store.add_feedback(feedback(record.id, 0))
    with pytest.raises(UnknownPrediction, match="no-such-id"):
        store.add_feedback(feedback("no-such-id", 1))

    message = str(conflict.value)
    assert "label 1" in message and "label 0" in message and record.id in message
    assert (conflict.value.stored, conflict.value.sent) == (1, 0)
    view = store.get_prediction(record.id)
    assert view is not None
    assert view.feedback == feedback(record.id, 1)  # stored once, by the first source
    assert view.feedback.created_at.utcoffset() == timedelta(0)
    assert store.counts() == {"predictions": 1, "feedback": 1}


@pytest.mark.parametrize("label", [2, -1, True])
def test_a_label_other_than_0_or_1_is_refused(store: AppStore, label: int) -> None:
    record = prediction(0)
    store.add_predictions([record])
    with pytest.raises(InvalidRecord, match="0 or 1"):
        store.add_feedback(feedback(record.id, label))


def test_a_feedback_batch_reports_each_label_and_stores_the_rest(store: AppStore) -> None:
    """Stored, duplicate, conflict and unknown side by side; a prediction labelled twice in
    the batch keeps its first label; the stored ones carry their serving request and row."""
    batch_request = uuid.uuid4().hex
    first, second, third = (
        replace(prediction(i), request_id=batch_request, request_row=i) for i in range(3)
    )
    labelled_before = prediction(3)
    store.add_predictions([first, second, third, labelled_before])
    store.add_feedback(feedback(labelled_before.id, 1))

    outcomes = store.add_feedback_many(
        [
            feedback(third.id, 1, source="replay"),
            feedback(labelled_before.id, 1, source="replay"),
            feedback(labelled_before.id, 0, source="replay"),
            feedback("no-such-id", 1, source="replay"),
            feedback(first.id, 0, source="replay"),
            feedback(first.id, 0, source="replay"),  # again in the same batch
            feedback(first.id, 1, source="replay"),  # the other label in the same batch
        ]
    )

    def outcome(record: PredictionRecord | None, label: int, status: str, stored: int | None):
        return FeedbackOutcome(
            prediction_id="no-such-id" if record is None else record.id,
            label=label,
            status=status,  # type: ignore[arg-type]
            stored_label=stored,
            request_id=None if record is None else record.request_id,
            request_row=None if record is None else record.request_row,
        )

    assert outcomes == [
        outcome(third, 1, "stored", 1),
        outcome(labelled_before, 1, "duplicate", 1),
        outcome(labelled_before, 0, "conflict", 1),
        outcome(None, 1, "unknown", None),
        outcome(first, 0, "stored", 0),
        outcome(first, 0, "duplicate", 0),
        outcome(first, 1, "conflict", 0),
    ]
    assert (outcomes[0].request_id, outcomes[0].request_row) == (batch_request, 2)
    assert isinstance(outcomes[2].refusal(), FeedbackConflict)
    assert isinstance(outcomes[3].refusal(), UnknownPrediction)
    assert outcomes[0].refusal() is None and outcomes[1].refusal() is None
    assert store.get_prediction(first.id).feedback == feedback(first.id, 0, source="replay")
    assert store.get_prediction(third.id).feedback == feedback(third.id, 1, source="replay")
    assert store.get_prediction(labelled_before.id).feedback == feedback(labelled_before.id, 1)
    assert store.get_prediction(second.id).feedback is None
    assert store.counts() == {"predictions": 4, "feedback": 3}
    assert store.add_feedback_many([]) == []


def test_a_large_feedback_batch_takes_a_few_statements(store: AppStore) -> None:
    """3,000 labels: one lookup, the insert in pages, not a statement per label."""
    records = [prediction(i / 100) for i in range(3000)]
    store.add_predictions(records)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        outcomes = store.add_feedback_many([feedback(r.id, i % 2) for i, r in enumerate(records)])
    finally:
        event.remove(store.engine, "before_cursor_execute", count)

    assert [o.status for o in outcomes] == ["stored"] * 3000
    assert [o.prediction_id for o in outcomes] == [r.id for r in records]
    assert len(statements) <= 10, statements
    assert store.counts() == {"predictions": 3000, "feedback": 3000}
    labels = {v.record.id: v.feedback.label for v in store.list_predictions(limit=1000).items}
    assert all(labels[r.id] == i % 2 for i, r in enumerate(records) if r.id in labels)


def test_a_feedback_batch_longer_than_one_lookup(
    store: AppStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_store_module, "IDS_PER_LOOKUP", 7)
    records = [prediction(i) for i in range(25)]
    store.add_predictions(records[:20])  # the last five are unknown

    outcomes = store.add_feedback_many([feedback(r.id, 1) for r in records])

    assert [o.status for o in outcomes] == ["stored"] * 20 + ["unknown"] * 5
    assert store.counts() == {"predictions": 20, "feedback": 20}


def test_an_invalid_label_in_a_batch_stores_none_of_it(store: AppStore) -> None:
    good, bad = prediction(0), prediction(1)
    store.add_predictions([good, bad])
    with pytest.raises(InvalidRecord, match=f"{bad.id} must be 0 or 1"):
        store.add_feedback_many([feedback(good.id, 1), feedback(bad.id, 2)])
    assert store.counts() == {"predictions": 2, "feedback": 0}


def test_concurrent_batches_store_each_label_once(database_url: str) -> None:
    """Two writers label the same predictions at once, 0 against 1, in opposite orders: each
    prediction gets exactly one label, stored by one batch and a conflict for the other (on
    PostgreSQL the later one finds labels stored since its lookup), and neither fails."""
    with AppStore(database_url) as setup:
        setup.migrate()
        records = [prediction(i) for i in range(400)]
        setup.add_predictions(records)
    results: dict[int, list[FeedbackOutcome]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def label(value: int) -> None:
        ordered = records if value == 0 else records[::-1]
        try:
            with AppStore(database_url) as writer:
                writer.ping()  # connect before the race starts
                start.wait()
                results[value] = writer.add_feedback_many([feedback(r.id, value) for r in ordered])
        except BaseException as exc:  # reported below, with the other thread's result
            errors.append(exc)

    threads = [threading.Thread(target=label, args=(value,)) for value in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors, errors
    by_id = {value: {o.prediction_id: o for o in results[value]} for value in (0, 1)}
    with AppStore(database_url) as reader:
        for record in records:
            zero, one = by_id[0][record.id], by_id[1][record.id]
            assert {zero.status, one.status} == {"stored", "conflict"}, (zero, one)
            winner = 0 if zero.status == "stored" else 1
            assert zero.stored_label == one.stored_label == winner
            assert reader.get_prediction(record.id).feedback.label == winner
        assert reader.counts()["feedback"] == len(records)


# -- audit -------------------------------------------------------------------------------------


def test_audit_round_trip_newest_first(store: AppStore) -> None:
    store.add_audit(
        actor="admin", action="rollout", outcome="ok", reason="canary promoted", detail={"v": 4}
    )
    store.add_audit(
        actor="loop",
        action="retrain",
        outcome="refused",
        reason="drift below threshold",
        detail={"drift_share": 0.125, "columns": ["dep_hour", "distance"], "at": T0},
    )

    entries = store.list_audit()

    assert [entry["action"] for entry in entries] == ["retrain", "rollout"]
    assert entries[0] == {
        "at": entries[0]["at"],
        "actor": "loop",
        "action": "retrain",
        "outcome": "refused",
        "reason": "drift below threshold",
        "detail": {"drift_share": 0.125, "columns": ["dep_hour", "distance"], "at": T0.isoformat()},
    }
    assert all(entry["at"].utcoffset() == timedelta(0) for entry in entries)
    assert entries[0]["at"] >= entries[1]["at"]
    assert store.list_audit(limit=1) == entries[:1]


def test_audit_detail_must_be_json(store: AppStore) -> None:
    with pytest.raises(InvalidRecord, match="not JSON"):
        store.add_audit(actor="a", action="x", outcome="ok", reason="", detail={"f": object()})


# -- outages -----------------------------------------------------------------------------------


def test_an_unreachable_postgres_is_database_unavailable(tmp_path: Path) -> None:
    store = AppStore(f"postgresql+psycopg://postgres@/postgres?host={tmp_path / 'no-server'}")
    assert store.ping() is False
    with pytest.raises(DatabaseUnavailable, match="unavailable"):
        store.add_predictions([prediction(0)])
    with pytest.raises(DatabaseUnavailable):
        store.list_predictions()
    store.close()


def test_an_unreachable_sqlite_is_database_unavailable(tmp_path: Path) -> None:
    with AppStore(f"sqlite:///{tmp_path / 'db' / 'app.db'}") as store:
        store.migrate()
        assert store.ping() is True
        store.close()  # drop pooled connections, which would keep the old file open
        (tmp_path / "db").rename(tmp_path / "elsewhere")

        assert store.ping() is False
        with pytest.raises(DatabaseUnavailable, match="unable to open"):
            store.add_predictions([prediction(0)])


def test_a_schema_mistake_is_not_mistaken_for_an_outage(tmp_path: Path) -> None:
    with AppStore(f"sqlite:///{tmp_path / 'app.db'}") as store:  # never migrated
        with pytest.raises(Exception, match="no such table") as raised:
            store.add_predictions([prediction(0)])
        assert not isinstance(raised.value, DatabaseUnavailable)


# -- multi-class predictions (image and text tasks) ---------------------------------------------


def class_prediction(minute: float, probabilities: list[float]) -> PredictionRecord:
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return replace(
        prediction(minute),
        task="support-triage",
        request={"text": "my flight was cancelled"},
        probability=probabilities[best],
        predicted_class=best,
        class_probabilities=probabilities,
        explanation={"kind": "tokens", "class_index": best, "probability": 0.5, "tokens": []},
    )


def test_a_class_prediction_round_trips_and_takes_any_of_its_class_labels(
    store: AppStore,
) -> None:
    record = class_prediction(0, [0.5, 0.125, 0.375])
    binary = prediction(1)
    store.add_predictions([record, binary])
    assert store.get_prediction(record.id).record == record
    assert store.get_prediction(binary.id).record.class_probabilities is None
    assert store.add_feedback(feedback(record.id, 2)) == "stored"
    assert store.get_prediction(record.id).feedback.label == 2
    # A label past its classes is refused, whatever the batch; a binary one stays 0/1.
    other = class_prediction(2, [0.2, 0.3, 0.5])
    store.add_predictions([other])
    with pytest.raises(InvalidRecord, match=r"class index 0…2, not 3"):
        store.add_feedback_many([feedback(other.id, 0), feedback(other.id, 3)])
    with pytest.raises(InvalidRecord, match="must be 0 or 1, not 2"):
        store.add_feedback(feedback(binary.id, 2))
    assert store.counts() == {"predictions": 3, "feedback": 1}


def test_the_database_refuses_a_negative_label_itself(store: AppStore) -> None:
    record = class_prediction(0, [0.5, 0.5, 0.0])
    store.add_predictions([record])
    with pytest.raises(IntegrityError, match=r"(?i)check"), store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO feedback (prediction_id, label, source, created_at) "
                "VALUES (:id, -1, 'sql', :at)"
            ).bindparams(bindparam("at", type_=UTCDateTime())),
            {"id": record.id, "at": T0},
        )


def test_0002_upgrades_to_0003_keeping_labels_and_downgrades_back(database_url: str) -> None:
    """0002 → 0003 adds the class columns and widens the label check; rows and labels written
    before keep their values. Down again, labels past 0/1 go with the classes."""
    with AppStore(database_url) as store:
        with store.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0002")
        old = prediction(0)
        with store.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO predictions (id, request_id, created_at, task, model_name, "
                    "model_version, slot, request, probability, latency_ms, request_row, "
                    "event_time) VALUES (:id, 'r', :at, 'flights', 'm', '1', 'stable', "
                    ":request, 0.25, 3.5, 0, :at)"
                ).bindparams(
                    bindparam("at", type_=UTCDateTime()), bindparam("request", type_=JSON())
                ),
                {"id": old.id, "at": old.created_at, "request": old.request},
            )
            connection.execute(
                text(
                    "INSERT INTO feedback (prediction_id, label, source, created_at) "
                    "VALUES (:id, 1, 'api', :at)"
                ).bindparams(bindparam("at", type_=UTCDateTime())),
                {"id": old.id, "at": T0},
            )
        store.migrate()
        view = store.get_prediction(old.id)
        assert view.feedback.label == 1 and view.record.class_probabilities is None
        labelled = class_prediction(1, [0.1, 0.1, 0.8])
        store.add_predictions([labelled])
        store.add_feedback(feedback(labelled.id, 2))
        with store.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0002")
            columns = {c["name"] for c in inspect(connection).get_columns("predictions")}
        assert "class_probabilities" not in columns
        with store.engine.connect() as connection:
            labels = dict(
                connection.execute(text("SELECT prediction_id, label FROM feedback")).all()
            )
        assert labels == {old.id: 1}
        store.migrate()
        assert store.get_prediction(old.id).feedback.label == 1
