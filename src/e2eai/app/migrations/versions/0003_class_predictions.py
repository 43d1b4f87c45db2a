"""Multi-class predictions (image and text tasks): each keeps its predicted class and every
class's probability, and a feedback label may be any class index, not only 0/1.

``probability`` stays what it was for binary tasks (P(positive)); for a multi-class task it is
the predicted class's probability. Rows from before have no class columns (binary).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FEEDBACK_COLUMNS = (
    sa.Column("prediction_id", sa.String(64), nullable=False),
    sa.Column("label", sa.Integer(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def _relabel(check: str) -> None:
    """Replace the feedback label's CHECK constraint by ``check``.

    SQLite cannot alter a constraint: batch mode rebuilds the table, and is told the table's
    shape (rather than reflecting it) so that the old CHECK is left behind on every version.
    """
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        table = sa.Table(
            "feedback",
            sa.MetaData(),
            *(column.copy() for column in _FEEDBACK_COLUMNS),
            sa.PrimaryKeyConstraint("prediction_id", name="pk_feedback"),
            sa.ForeignKeyConstraint(
                ["prediction_id"],
                ["predictions.id"],
                name="fk_feedback_prediction_id_predictions",
                ondelete="CASCADE",
            ),
            sa.CheckConstraint(check, name="ck_feedback_label"),
        )
        with op.batch_alter_table("feedback", copy_from=table, recreate="always"):
            pass
        return
    op.drop_constraint("ck_feedback_label", "feedback", type_="check")
    op.create_check_constraint("ck_feedback_label", "feedback", check)


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("predicted_class", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("class_probabilities", sa.JSON(), nullable=True))
    _relabel("label >= 0")


def downgrade() -> None:
    # Labels other than 0/1 cannot survive the old constraint: they go with the classes.
    op.execute("DELETE FROM feedback WHERE label NOT IN (0, 1)")
    _relabel("label IN (0, 1)")
    # Plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35 has it), not a batch rebuild: dropping
    # and recreating ``predictions`` on SQLite would cascade to every feedback row.
    op.execute("ALTER TABLE predictions DROP COLUMN class_probabilities")
    op.execute("ALTER TABLE predictions DROP COLUMN predicted_class")
