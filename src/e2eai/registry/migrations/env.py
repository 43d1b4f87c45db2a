"""Alembic environment: migrates the connection ``alembic_config`` hands over."""

from __future__ import annotations

from typing import Any

from alembic import context

from e2eai.registry.migrations import VERSION_TABLE
from e2eai.registry.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the registry's migrations run on a connection: open a ModelRegistry (it migrates) "
        "or use `alembic_config(connection)` from e2eai.registry.migrations"
    )


def _registry_tables_only(name: str | None, type_: str, _parent: Any) -> bool:
    # The database may hold the app's tables too: comparing (autogenerate, `alembic check`)
    # must not see them as tables the registry would drop.
    return type_ != "table" or name in Base.metadata.tables


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    include_name=_registry_tables_only,
    # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
