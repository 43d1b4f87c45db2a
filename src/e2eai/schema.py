"""The vocabulary every task's schema is written in: features, request fields, entities, views.

A task (:mod:`e2eai.tasks`) declares its model inputs with these types once; everything
downstream derives from them: data validation ranges, the Feast feature views and feature
service, training columns, the ONNX input signature, the V2 inference request, the app's
form and the monitoring column mapping. Nothing here belongs to one task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Kind = Literal["numeric", "categorical"]
Source = Literal["request", "feature_view", "derived"]
FieldType = Literal["str", "int", "float", "datetime"]


@dataclass(frozen=True)
class Entity:
    """A Feast entity: the join key of one or more feature views."""

    name: str
    join_key: str
    description: str


@dataclass(frozen=True)
class Feature:
    """One model input column.

    ``source`` says where its value comes from at serving time: the request itself, a Feast
    feature view (``view``), or derived from those by the task. ``nullable`` marks inputs that
    may be missing at serving time although the source is not a feature view (a value derived
    from one); feature-view inputs are always nullable (the store may have no row).
    """

    name: str
    kind: Kind
    source: Source
    description: str
    minimum: float | None = None
    maximum: float | None = None
    view: str | None = None  # Feast feature view that serves it (source == "feature_view")
    categories: tuple[str, ...] | None = None  # known categories (validation, the app's form)
    nullable: bool = False

    @property
    def accepts_missing(self) -> bool:
        """Whether a request may leave this input empty (null / NaN / "")."""
        return self.nullable or self.source == "feature_view"

    @property
    def onnx_dtype(self) -> Literal["float32", "string"]:
        return "float32" if self.kind == "numeric" else "string"

    @property
    def v2_datatype(self) -> Literal["FP32", "BYTES"]:
        """Open Inference Protocol tensor datatype of this input."""
        return "FP32" if self.kind == "numeric" else "BYTES"


@dataclass(frozen=True)
class RequestField:
    """One field of a prediction request (what a client knows when it asks)."""

    name: str
    type: FieldType
    description: str
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    nullable: bool = False


@dataclass(frozen=True)
class FeatureView:
    """A Feast feature view: features of one entity, valid for ``ttl`` after their timestamp."""

    name: str
    entity: str
    ttl: timedelta
    description: str
