"""Registry metadata as SQLAlchemy ORM tables (portable: SQLite by default, PostgreSQL too).

The schema itself is made by the Alembic migrations in ``migrations/versions``; a test
checks that these classes and the migrations describe the same tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from e2eai.registry.stages import Stage

_STAGE_VALUES = ", ".join(f"'{stage.value}'" for stage in Stage)

# Explicit names for the constraints the classes below leave unnamed, so that later migrations
# can refer to them on every backend. They are PostgreSQL's own default names: registries
# created before the migrations existed (``create_all``, no names given) already have them.
# CHECK constraints have no such default: name each one explicitly.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",  # SQLAlchemy's default
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no time zones (stored naive, meaning UTC); PostgreSQL gets ``timestamptz`` with
    an aware value, so the session's time zone cannot shift it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: registry timestamps must be tz-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class VersionAllocation(Base):
    """One row per version number ever handed out: the registry's own sequence.

    Numbers are taken in a short transaction before artifacts upload (their keys contain the
    number) and are never given out again, even when that registration then fails.
    """

    __tablename__ = "version_allocations"
    # AUTOINCREMENT makes SQLite never reuse a number; PostgreSQL sequences never do.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it)

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    allocated_at: Mapped[datetime] = mapped_column(default=utc_now)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(f"stage IN ({_STAGE_VALUES})", name="ck_model_versions_stage"),
        # The database itself guarantees at most one champion per model name.
        Index(
            "uq_model_versions_one_champion",
            "name",
            unique=True,
            sqlite_where=text("stage = 'champion'"),
            postgresql_where=text("stage = 'champion'"),
        ),
        Index("ix_model_versions_name_stage", "name", "stage"),
    )

    version: Mapped[int] = mapped_column(
        ForeignKey("version_allocations.version"), primary_key=True, autoincrement=False
    )
    name: Mapped[str] = mapped_column(String(128))
    family: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]]
    lineage: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    artifacts: Mapped[list[ArtifactRow]] = relationship(
        order_by="ArtifactRow.name", lazy="selectin", cascade="all, delete-orphan"
    )
    transitions: Mapped[list[StageTransitionRow]] = relationship(
        order_by="StageTransitionRow.id", lazy="selectin", cascade="all, delete-orphan"
    )


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("version", "name", name="uq_artifacts_version_name"),
        UniqueConstraint("key", name="uq_artifacts_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(ForeignKey("model_versions.version"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)


class StageTransitionRow(Base):
    __tablename__ = "stage_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(ForeignKey("model_versions.version"), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(16))
    to_stage: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utc_now)
