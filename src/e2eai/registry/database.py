"""The registry's database engine: any SQLAlchemy URL, with SQLite tuned for several processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from e2eai.errors import RegistryError
from e2eai.registry.tables import Base

# Execution option marking write transactions (SQLite then takes the write lock up front).
WRITE_TRANSACTION = "e2eai_write_transaction"
# How long a SQLite connection waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_registry_engine(url: str) -> Engine:
    """An engine for ``url`` with the registry's tables created if missing.

    For SQLite: the parent directory is created, the journal is WAL (readers never block the
    writer), a busy timeout makes concurrent processes wait instead of failing, and write
    transactions start with ``BEGIN IMMEDIATE`` so two writers serialise at the start rather
    than deadlocking halfway (see ``writer``).
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise RegistryError(f"registry.database_url {url!r} is not a SQLAlchemy URL") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)
        _tune_sqlite(engine)
    else:
        engine = create_engine(parsed, pool_pre_ping=True)
    _create_tables(engine)
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine, for transactions that write."""
    return engine.execution_options(**{WRITE_TRANSACTION: True})


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module (which would BEGIN lazily, only at
        # the first write) so that the "begin" hook below decides how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL, much faster
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction that reads and then writes cannot upgrade its lock while
        # another process writes (SQLITE_BUSY at once, no waiting): writers lock up front.
        immediate = connection.get_execution_options().get(WRITE_TRANSACTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _set_wal(cursor: Any, attempts: int = 50) -> None:
    """Switch the database to WAL, waiting out other processes doing the same.

    Changing the journal mode needs an exclusive lock and SQLite does not run the busy
    handler for it: two processes opening a new registry at once would see "database is
    locked" immediately. The mode is persistent, so once one of them wins the rest see WAL.
    """
    import sqlite3
    import time

    for attempt in range(attempts):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _create_tables(engine: Engine) -> None:
    # Inside a write transaction, so that processes opening a new SQLite registry at the same
    # moment create the tables one after the other; elsewhere a lost race just means the
    # tables exist now, which the retry sees.
    try:
        with writer(engine).begin() as connection:
            Base.metadata.create_all(connection)
    except DBAPIError:
        with writer(engine).begin() as connection:
            Base.metadata.create_all(connection)
