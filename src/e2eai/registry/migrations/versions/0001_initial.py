"""Model versions, their artifacts and stage transitions, and the version number sequence.

Exactly the schema ``Base.metadata.create_all`` made before the registry had migrations:
a registry created that way is stamped at this revision when it is opened.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain types (not the registry's TypeDecorators) and the stage names written out, so
    # this file never changes with the code.
    op.create_table(
        "version_allocations",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("allocated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name="version_allocations_pkey"),
        # AUTOINCREMENT: SQLite never hands out a number twice.
        sqlite_autoincrement=True,
    )

    op.create_table(
        "model_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name="model_versions_pkey"),
        sa.CheckConstraint(
            "stage IN ('candidate', 'canary', 'champion', 'archived', 'rejected')",
            name="ck_model_versions_stage",
        ),
        sa.ForeignKeyConstraint(
            ["version"],
            ["version_allocations.version"],
            name="model_versions_version_fkey",
        ),
    )
    op.create_index("ix_model_versions_name_stage", "model_versions", ["name", "stage"])
    # At most one champion per model name, guaranteed by the database.
    op.create_index(
        "uq_model_versions_one_champion",
        "model_versions",
        ["name"],
        unique=True,
        sqlite_where=sa.text("stage = 'champion'"),
        postgresql_where=sa.text("stage = 'champion'"),
    )

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="artifacts_pkey"),
        sa.UniqueConstraint("version", "name", name="uq_artifacts_version_name"),
        sa.UniqueConstraint("key", name="uq_artifacts_key"),
        sa.ForeignKeyConstraint(
            ["version"], ["model_versions.version"], name="artifacts_version_fkey"
        ),
    )
    op.create_index("ix_artifacts_version", "artifacts", ["version"])

    op.create_table(
        "stage_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=True),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="stage_transitions_pkey"),
        sa.ForeignKeyConstraint(
            ["version"], ["model_versions.version"], name="stage_transitions_version_fkey"
        ),
    )
    op.create_index("ix_stage_transitions_version", "stage_transitions", ["version"])


def downgrade() -> None:
    op.drop_index("ix_stage_transitions_version", table_name="stage_transitions")
    op.drop_table("stage_transitions")
    op.drop_index("ix_artifacts_version", table_name="artifacts")
    op.drop_table("artifacts")
    op.drop_index("uq_model_versions_one_champion", table_name="model_versions")
    op.drop_index("ix_model_versions_name_stage", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("version_allocations")
