"""Predictions keep the model inputs they were answered from, their explanation, their
row in the serving request (a batch's predictions share one request id) and the time of
the event they predict (monitoring windows by it; rows from before take their created_at).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows written before this revision (and by models that do not explain) have none.
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("features", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("explanation", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("request_row", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("event_time", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE predictions SET event_time = created_at")
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("event_time", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_predictions_event_time", "predictions", ["event_time"])


def downgrade() -> None:
    op.drop_index("ix_predictions_event_time", table_name="predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("event_time")
        batch.drop_column("request_row")
        batch.drop_column("explanation")
        batch.drop_column("features")
