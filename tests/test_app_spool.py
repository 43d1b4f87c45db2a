"""Nothing lost while the database is down: the spool in front of the app's store.

SQLite unit tests make a real outage by moving the database's directory away (after
dropping the pooled connections): records spool in order, drain in order (SQLite's rowid
shows the order they were stored in), a torn last line is set aside and reported, a drain
repeated after a crash stores nothing twice. The outage test stops a real PostgreSQL server
in the middle of a load from several threads, starts it again, and counts every record.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import RestartablePostgres
from sqlalchemy import text

from e2eai.app.spool import REJECTED_FILE, SPOOL_PATTERN, RecordWriter, SpoolInUse
from e2eai.app.store import AppStore, PredictionRecord

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2013, 6, 1, 12, 0, tzinfo=UTC)


def predictions(count: int, start: int = 0) -> list[PredictionRecord]:
    return [
        PredictionRecord(
            id=uuid.uuid4().hex,
            request_id=f"req-{start + i}",
            created_at=T0 + timedelta(seconds=start + i),
            task="flights",
            model_name="flight-delay",
            model_version="3",
            slot="stable",
            request={"origin": "JFK", "dep_hour": (start + i) % 24},
            probability=0.25,
            latency_ms=2.5,
        )
        for i in range(count)
    ]


class SqliteOutage:
    """Takes a SQLite database away from its store (and gives it back)."""

    def __init__(self, store: AppStore, directory: Path) -> None:
        self.store = store
        self.directory = directory
        self.away = directory.with_name(directory.name + "-away")

    def begin(self) -> None:
        self.store.engine.dispose()  # pooled connections would keep the moved file open
        self.directory.rename(self.away)

    def end(self) -> None:
        self.away.rename(self.directory)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[AppStore]:
    store = AppStore(f"sqlite:///{tmp_path / 'db' / 'app.db'}")
    store.migrate()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def outage(sqlite_store: AppStore, tmp_path: Path) -> SqliteOutage:
    return SqliteOutage(sqlite_store, tmp_path / "db")


def stored_in_order(store: AppStore) -> list[str]:
    """Prediction ids in the order SQLite stored them (rowid)."""
    with store.engine.connect() as connection:
        return list(connection.execute(text("SELECT id FROM predictions ORDER BY rowid")).scalars())


def ids(records: list[PredictionRecord]) -> list[str]:
    return [record.id for record in records]


def test_records_spool_while_the_database_is_down_and_drain_in_order(
    sqlite_store: AppStore, outage: SqliteOutage, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    before, during, first_back, later = predictions(3), predictions(4, 3), predictions(2, 7), []
    with RecordWriter(sqlite_store, spool) as writer:
        assert writer.write(before) == "stored"
        outage.begin()
        assert writer.write(during[:2]) == "spooled"
        assert writer.write(during[2:]) == "spooled"
        assert writer.depth == 4
        outage.end()
        # Back, but records still wait: new ones queue behind them, so the order holds.
        assert writer.write(first_back) == "spooled"
        assert writer.depth == 6

        assert writer.drain() == 6

        assert writer.depth == 0
        assert list(spool.glob(SPOOL_PATTERN)) == []
        later = predictions(2, 9)
        assert writer.write(later) == "stored"
    assert stored_in_order(sqlite_store) == ids(before + during + first_back + later)


def test_a_torn_last_line_is_drained_up_to_and_set_aside(
    sqlite_store: AppStore, outage: SqliteOutage, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spooled = predictions(5)
    outage.begin()
    with RecordWriter(sqlite_store, spool) as writer:
        assert writer.write(spooled[:3]) == "spooled"
        assert writer.write(spooled[3:]) == "spooled"
    # The process dies half-way through appending one more record.
    (spool_file,) = spool.glob(SPOOL_PATTERN)
    fragment = b'{"id":"d41d8cd98f00b204e9800998ecf8427e","request_id":"req-'
    with spool_file.open("ab") as file:
        file.write(fragment)

    outage.end()
    with RecordWriter(sqlite_store, spool) as restarted:  # the next process
        assert restarted.depth == 6  # five records and the torn one
        assert restarted.drain() == 5
        assert restarted.rejected == 1
        assert restarted.depth == 0

    assert stored_in_order(sqlite_store) == ids(spooled)
    assert list(spool.glob(SPOOL_PATTERN)) == []
    (entry,) = [json.loads(line) for line in (spool / REJECTED_FILE).read_text().splitlines()]
    assert entry["file"] == spool_file.name
    assert entry["line"] == 6
    assert "torn write" in entry["reason"]
    assert entry["text"] == fragment.decode()


def test_a_new_process_never_appends_to_an_old_spool_file(
    sqlite_store: AppStore, outage: SqliteOutage, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    first, second = predictions(2), predictions(2, 2)
    outage.begin()
    with RecordWriter(sqlite_store, spool) as writer:
        writer.write(first)
    (old_file,) = spool.glob(SPOOL_PATTERN)
    with old_file.open("ab") as file:
        file.write(b'{"id":"torn')  # torn: anything appended here would be glued to it
    with RecordWriter(sqlite_store, spool) as writer:
        assert writer.write(second) == "spooled"
        assert len(list(spool.glob(SPOOL_PATTERN))) == 2
        outage.end()
        assert writer.drain() == 4
        assert writer.rejected == 1
    assert stored_in_order(sqlite_store) == ids(first + second)


def test_a_drain_repeated_after_a_crash_stores_nothing_twice(
    sqlite_store: AppStore, outage: SqliteOutage, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spooled = predictions(6)
    outage.begin()
    with RecordWriter(sqlite_store, spool) as writer:
        writer.write(spooled)
    outage.end()
    # An earlier drain stored the first half, then the process died before deleting the file.
    sqlite_store.add_predictions(spooled[:3])

    with RecordWriter(sqlite_store, spool) as restarted:
        assert restarted.drain() == 6

    assert stored_in_order(sqlite_store) == ids(spooled)
    assert sqlite_store.counts()["predictions"] == 6


def test_spool_files_rotate_and_each_goes_once_all_its_records_are_stored(
    sqlite_store: AppStore, outage: SqliteOutage, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spooled = predictions(35)
    outage.begin()
    with RecordWriter(sqlite_store, spool, records_per_file=10) as writer:
        for start in range(0, 35, 5):
            assert writer.write(spooled[start : start + 5]) == "spooled"
        assert len(list(spool.glob(SPOOL_PATTERN))) == 4
        outage.end()
        assert writer.drain() == 35
        assert list(spool.glob(SPOOL_PATTERN)) == []
    assert stored_in_order(sqlite_store) == ids(spooled)


def test_the_background_thread_drains_when_the_database_returns(
    sqlite_store: AppStore, outage: SqliteOutage, tmp_path: Path
) -> None:
    spooled = predictions(4)
    with RecordWriter(sqlite_store, tmp_path / "spool", retry_seconds=0.05) as writer:
        writer.start()
        outage.begin()
        assert writer.write(spooled) == "spooled"
        time.sleep(0.2)  # retries while the database is away change nothing
        assert writer.depth == 4
        outage.end()
        deadline = time.monotonic() + 10
        while writer.depth and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writer.depth == 0
    assert stored_in_order(sqlite_store) == ids(spooled)


def test_one_writer_per_spool_directory(sqlite_store: AppStore, tmp_path: Path) -> None:
    with (
        RecordWriter(sqlite_store, tmp_path / "spool"),
        pytest.raises(SpoolInUse, match="its own spool directory"),
    ):
        RecordWriter(sqlite_store, tmp_path / "spool")
    RecordWriter(sqlite_store, tmp_path / "spool").close()  # free again once closed


# -- a real PostgreSQL outage under load ------------------------------------------------------


class DrainRecordingStore(AppStore):
    """The real store, noting the ids the spool's drain thread hands it, in order."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.drained: list[str] = []

    def add_predictions(self, records):  # type: ignore[no-untyped-def]
        new = super().add_predictions(records)
        if threading.current_thread().name == "e2eai-spool-drain":
            self.drained += [record.id for record in records]
        return new


@pytest.mark.timeout(180)
def test_a_postgres_outage_mid_load_loses_and_duplicates_nothing(
    restartable_postgres: RestartablePostgres, tmp_path: Path
) -> None:
    threads, per_thread, batch = 4, 500, 5
    writes_total = threads * per_thread // batch
    store = DrainRecordingStore(restartable_postgres.url)
    store.migrate()
    writer = RecordWriter(store, tmp_path / "spool", retry_seconds=0.1)
    writer.start()

    done = 0  # writes finished, all threads
    done_lock = threading.Lock()
    outcomes: dict[int, list[tuple[list[str], str]]] = {t: [] for t in range(threads)}
    records = {t: predictions(per_thread, start=t * per_thread) for t in range(threads)}
    failures: list[BaseException] = []

    def load(thread: int) -> None:
        nonlocal done
        try:
            mine = records[thread]
            for start in range(0, per_thread, batch):
                chunk = mine[start : start + batch]
                outcomes[thread].append((ids(chunk), writer.write(chunk)))
                with done_lock:
                    done += 1
                time.sleep(0.01)  # a steady load, so the outage lands in the middle of it
        except BaseException as exc:  # surfaced by the main thread
            failures.append(exc)

    def wait_for_writes(count: int) -> int:
        deadline = time.monotonic() + 60
        while done < count and time.monotonic() < deadline and not failures:
            time.sleep(0.005)
        return done

    workers = [threading.Thread(target=load, args=(t,)) for t in range(threads)]
    try:
        for worker in workers:
            worker.start()
        at_stop = wait_for_writes(writes_total // 4)
        restartable_postgres.stop()
        wait_for_writes(at_stop + writes_total // 5)
        restartable_postgres.start()
        for worker in workers:
            worker.join(timeout=120)
        assert not failures, failures
        assert not any(worker.is_alive() for worker in workers)
        deadline = time.monotonic() + 60
        while writer.depth and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.depth == 0, f"{writer.depth} records still spooled"
    finally:
        writer.stop()
        for worker in workers:
            worker.join(timeout=10)

    verdicts = [verdict for thread in outcomes.values() for _, verdict in thread]
    spooled_by_thread = {
        thread: [i for chunk, verdict in outcome if verdict == "spooled" for i in chunk]
        for thread, outcome in outcomes.items()
    }
    assert len(verdicts) == writes_total
    assert verdicts.count("spooled") > 0 and verdicts.count("stored") > 0, verdicts
    # Every record, exactly once.
    with store.engine.connect() as connection:
        stored = list(connection.execute(text("SELECT id FROM predictions")).scalars())
    expected = {record.id for thread in records.values() for record in thread}
    assert len(stored) == len(expected) == threads * per_thread
    assert set(stored) == expected
    assert store.counts()["predictions"] == threads * per_thread
    # The drain handed over every spooled record, each thread's in the order it wrote them.
    first_drained = list(dict.fromkeys(store.drained))
    assert set(first_drained) == {i for mine in spooled_by_thread.values() for i in mine}
    position = {record_id: index for index, record_id in enumerate(first_drained)}
    for mine in spooled_by_thread.values():
        assert [position[i] for i in mine] == sorted(position[i] for i in mine)
    assert writer.rejected == 0
    assert list((tmp_path / "spool").glob(SPOOL_PATTERN)) == []
    writer.close()
    store.close()
