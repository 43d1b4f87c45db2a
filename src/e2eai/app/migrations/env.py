"""Alembic environment: migrates the connection ``alembic_config`` hands over."""

from __future__ import annotations

from alembic import context

from e2eai.app.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the app's migrations run on a connection: use AppStore(url).migrate() "
        "(or `alembic_config(connection)` from e2eai.app.migrations)"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
