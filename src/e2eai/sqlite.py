"""SQLite as a multi-process database: WAL, a busy timeout, writers that lock up front.

The model registry and the app store both keep SQLite as the embedded default; both open it
through :func:`tune_sqlite`. Transactions that write run on
``engine.execution_options(**{WRITE_TRANSACTION: True})`` and begin IMMEDIATE.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, event

WRITE_TRANSACTION = "e2eai_write_transaction"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def tune_sqlite(engine: Engine) -> None:
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
