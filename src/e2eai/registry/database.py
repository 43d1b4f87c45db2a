"""The registry's database engine: any SQLAlchemy URL, with SQLite tuned for several processes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from e2eai.errors import RegistryError
from e2eai.registry.tables import Base
from e2eai.sqlite import WRITE_TRANSACTION, tune_sqlite

# Execution option marking write transactions (SQLite then takes the write lock up front).
# How long a SQLite connection waits for another process's write lock before giving up.


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
        tune_sqlite(engine)
    else:
        engine = create_engine(parsed, pool_pre_ping=True)
    _create_tables(engine)
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine, for transactions that write."""
    return engine.execution_options(**{WRITE_TRANSACTION: True})


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
