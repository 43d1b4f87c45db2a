"""The app database's tables as SQLAlchemy ORM classes (portable: SQLite and PostgreSQL).

The schema itself is made by the Alembic migrations in ``migrations/versions``; a test
checks that these classes and the migrations describe the same tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from e2eai.registry.tables import UTCDateTime

# Explicit constraint names, so that later migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class PredictionRow(Base):
    """One answered prediction: what was asked, which model answered, what it said."""

    __tablename__ = "predictions"
    __table_args__ = (
        # Newest-first listing pages on (created_at, id); time filters use the same index.
        Index("ix_predictions_created_at_id", "created_at", "id"),
        Index("ix_predictions_model_version", "model_version"),
        Index("ix_predictions_slot", "slot"),
        Index("ix_predictions_event_time", "event_time"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(255))
    # The prediction's row in that serving request (a batch shares one request id).
    request_row: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime]
    # When the predicted event happens (the task's request time field), else created_at.
    event_time: Mapped[datetime]
    task: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    slot: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]]
    probability: Mapped[float] = mapped_column(Double)
    latency_ms: Mapped[float] = mapped_column(Double)
    # The model inputs after enrichment, and the model's explanation (None: it gave none).
    features: Mapped[dict[str, Any] | None]
    explanation: Mapped[dict[str, Any] | None]
    # Multi-class tasks (images, text): the predicted class's index and every class's
    # probability, in the task's class order; None for a binary task, whose ``probability``
    # is P(positive) (for a multi-class one it is the predicted class's).
    predicted_class: Mapped[int | None] = mapped_column(Integer)
    class_probabilities: Mapped[list[float] | None] = mapped_column(JSON)


class FeedbackRow(Base):
    """The ground-truth label of one prediction; at most one per prediction."""

    __tablename__ = "feedback"
    # 0/1 for a binary task, the class index (0…K-1) for a multi-class one: the store checks
    # the upper bound against the prediction's classes.
    __table_args__ = (CheckConstraint("label >= 0", name="label"),)

    prediction_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class AuditRow(Base):
    """One decision or control action (canary, retrain, admin call) and how it ended."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]]
