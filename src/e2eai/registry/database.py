"""The registry's database engine: any SQLAlchemy URL, with SQLite tuned for several processes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from e2eai.errors import RegistryError
from e2eai.registry.migrations import VERSION_TABLE, alembic_config
from e2eai.sqlite import WRITE_TRANSACTION, tune_sqlite

# Concurrent `migrate` calls on PostgreSQL take turns on this advisory lock (the app's
# migrations use 0xE2EA_0001: the two may share one database without waiting on each other).
_MIGRATION_LOCK_KEY = 0xE2EA_0002
# The tables `Base.metadata.create_all` made before the registry had migrations, and the
# revision that describes exactly that schema: such a database is stamped, not recreated.
_PRE_MIGRATION_TABLES = frozenset(
    {"version_allocations", "model_versions", "artifacts", "stage_transitions"}
)
_PRE_MIGRATION_REVISION = "0001"


def create_registry_engine(url: str) -> Engine:
    """An engine for ``url`` with the registry's schema migrated to the newest revision.

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
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine, for transactions that write."""
    return engine.execution_options(**{WRITE_TRANSACTION: True})


def migrate(engine: Engine) -> None:
    """Bring the registry's schema to the newest migration (``alembic upgrade head``).

    Idempotent, and safe when several processes open the same registry at once: on SQLite
    the write transaction (``BEGIN IMMEDIATE``) serialises them, on PostgreSQL an advisory
    lock held until commit does; whoever comes second finds the schema up to date. A database
    whose tables were made before the registry had migrations is stamped at the revision
    describing them, keeping its rows.
    """
    with writer(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        config = alembic_config(connection)
        if _made_before_migrations(connection):
            command.stamp(config, _PRE_MIGRATION_REVISION)
        command.upgrade(config, "head")


def _made_before_migrations(connection: Connection) -> bool:
    """Whether the registry's tables are there without the migrations' version table."""
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE in tables:
        return False
    present = _PRE_MIGRATION_TABLES & tables
    if not present:
        return False  # a new registry (possibly sharing the database with the app)
    if present != _PRE_MIGRATION_TABLES:
        url = connection.engine.url.render_as_string(hide_password=True)
        raise RegistryError(
            f"registry database {url} has the tables {sorted(present)} but not "
            f"{sorted(_PRE_MIGRATION_TABLES - present)} nor {VERSION_TABLE}: it was not made "
            "by the registry; refusing to migrate it"
        )
    return True
