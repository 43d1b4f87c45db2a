"""What the app stores, written straight into its store: labelled predictions.

``store_labelled`` writes one stable-slot prediction per answer, spread evenly over ``span``
from ``start`` (the event time a monitoring pass windows by), each with its label as replay
feedback at the same time, as the app does for a request and its later feedback.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from e2eai.app.store import AppStore, FeedbackRecord, PredictionRecord


def store_labelled(
    store: AppStore,
    task: Any,
    version: int,
    answers: Sequence[dict[str, Any]],
    labels: Sequence[int],
    start: datetime,
    span: timedelta,
    model_name: str = "m",
) -> list[PredictionRecord]:
    """Store ``answers`` (each the record's own fields: ``probability`` and any of
    ``request``, ``features``, ``predicted_class``, ``class_probabilities``) with their
    ``labels``; returns the records."""
    step = span / len(answers)
    records = [
        PredictionRecord(
            id=uuid.uuid4().hex,
            request_id=uuid.uuid4().hex,
            created_at=datetime.now(UTC),
            event_time=start + i * step,
            task=task.name,
            model_name=model_name,
            model_version=str(version),
            slot="stable",
            latency_ms=1.0,
            **{"request": {}, **answer},
        )
        for i, answer in enumerate(answers)
    ]
    store.add_predictions(records)
    for record, label in zip(records, labels, strict=True):
        store.add_feedback(FeedbackRecord(record.id, int(label), "replay", record.event_time))
    return records
