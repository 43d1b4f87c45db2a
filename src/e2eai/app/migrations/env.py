"""Alembic environment: migrates the connection ``alembic_config`` hands over."""

from __future__ import annotations

from typing import Any

from alembic import context

from e2eai.app.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the app's migrations run on a connection: use AppStore(url).migrate() "
        "(or `alembic_config(connection)` from e2eai.app.migrations)"
    )


def _app_tables_only(name: str | None, type_: str, _parent: Any) -> bool:
    # The database may hold the registry's tables too: comparing (`alembic check`) must not
    # see them as tables the app would drop.
    return type_ != "table" or name in Base.metadata.tables


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    include_name=_app_tables_only,
    # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
