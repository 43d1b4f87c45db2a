"""``Task``: what is predicted from what, and how one task's data reaches the model.

A task declares its schema (label, row id, optional event timestamp, the model's inputs with
their kinds and ranges, the request fields a client sends, entities, feature views and the
feature service, evaluation slices, the model families that apply) and implements the few
steps that are particular to its data: preparing the raw tables, building the feature views'
sources, the point-in-time training set and the online enrichment of a request. Every
stage receives the task beside the settings; nothing below the CLI imports one task's
constants.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from e2eai.schema import Entity, Feature, FeatureView, RequestField

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from e2eai.config import Settings
    from e2eai.data.prepare import PreparedData
    from e2eai.features.store import AppliedRepo, Materialized

FAMILIES: tuple[str, ...] = ("torch_mlp", "hist_gb", "logreg")
BASELINES: tuple[str, ...] = ("logreg", "hist_gb")


@dataclass(frozen=True)
class FeatureTables:
    """The feature views' sources (and the entity table) a feature build wrote."""

    repo: Path
    rows: dict[str, int]

    def summary(self) -> dict[str, object]:
        return {"feature_repo": str(self.repo), "rows": self.rows}


@dataclass(frozen=True)
class Task(ABC):
    """One binary prediction task: its schema, and the steps particular to its data."""

    name: str
    description: str
    source: str
    """Where the raw data comes from (a package, a path, an s3:// URI)."""
    label: str
    """Column of the prepared and training frames holding the 0/1 label."""
    label_rule: str
    """What 1 means, in words (``arr_delay >= 15 min``)."""
    row_id: str
    """Column identifying one prediction (a flight, an applicant): the request id."""
    timestamp: str | None
    """Event timestamp column (UTC) for point-in-time joins and time splits; None: none."""
    features: tuple[Feature, ...]
    """The model's inputs, in the order of the ONNX signature."""
    request_fields: tuple[RequestField, ...]
    """What a client sends to ask for one prediction (before enrichment)."""
    entities: tuple[Entity, ...] = ()
    feature_views: tuple[FeatureView, ...] = ()
    feature_service: str = ""
    slices: tuple[str, ...] = ()
    """Columns of the training frame that evaluation breaks metrics down by."""
    families: tuple[str, ...] = FAMILIES
    baselines: tuple[str, ...] = BASELINES
    crosses: tuple[tuple[str, str], ...] = ()
    """Feature pairs the Wide & Deep family's wide path sees as hashed crosses."""
    sequence: tuple[tuple[str, ...], ...] = ()
    """Numeric features that form a sequence, one tuple per step, the earliest first, every
    step the same fields in the same order (a plane's earlier legs of the day): what the
    recurrent family (``torch_gru``) reads step by step. Empty: the task has none."""
    gates: tuple[tuple[str, float], ...] = ()
    """The task's own gate margins (``baseline_margin``, ``champion_tolerance``): used where
    the settings leave ``gates.<name>`` unset."""
    positive_name: str = "positive"
    """A word for the positive class in reports and the app (``delayed``, ``bad``)."""

    modality: ClassVar[str] = "tabular"
    """What one input is: ``tabular`` (a row of the feature columns, binary label),
    ``image`` (a tensor) or ``text`` (a message); images and text have a multi-class label
    and train by :mod:`e2eai.training.multiclass_run`."""

    # -- the schema, derived ---------------------------------------------------------------

    @property
    def time_based(self) -> bool:
        """Split by time (and replay in time order) when the task has a timestamp."""
        return self.timestamp is not None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def request_time_field(self) -> str | None:
        """The request field that says when the predicted event happens (the first datetime
        field: a flight's scheduled departure); monitoring windows predictions by it."""
        return next((f.name for f in self.request_fields if f.type == "datetime"), None)

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    def gate_threshold(self, settings: Settings, name: str) -> float:
        """``gates.<name>`` as set, else the task's own, else the platform default."""
        from e2eai import config

        chosen = getattr(settings.gates, name)
        if chosen is not None:
            return float(chosen)
        own = dict(self.gates)
        return float(own[name]) if name in own else getattr(config, f"DEFAULT_{name.upper()}")

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"task {self.name!r} has no feature {name!r}")

    def view_features(self, view: str) -> tuple[Feature, ...]:
        """Features stored in one Feast feature view."""
        if view not in {v.name for v in self.feature_views}:
            raise KeyError(f"task {self.name!r} has no feature view {view!r}")
        return tuple(f for f in self.features if f.view == view)

    def feature_refs(self) -> list[str]:
        """``view:feature`` references of every feature-view input (the feature service)."""
        return [f"{f.view}:{f.name}" for f in self.features if f.source == "feature_view"]

    def describe(self) -> dict[str, Any]:
        """What ``e2eai tasks list`` shows: source, label, keys and every column."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "label": {"column": self.label, "rule": self.label_rule},
            "row_id": self.row_id,
            "timestamp": self.timestamp,
            "split": "time" if self.time_based else "stratified",
            "entities": [e.join_key for e in self.entities],
            "feature_service": self.feature_service,
            "families": list(self.families),
            "request_fields": [
                {"name": f.name, "type": f.type, "description": f.description}
                for f in self.request_fields
            ],
            "columns": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "source": f.source,
                    **({"view": f.view} if f.view else {}),
                    **({"minimum": f.minimum} if f.minimum is not None else {}),
                    **({"maximum": f.maximum} if f.maximum is not None else {}),
                    **({"categories": list(f.categories)} if f.categories else {}),
                    "description": f.description,
                }
                for f in self.features
            ],
        }

    # -- the steps particular to this task's data ------------------------------------------

    def data_sources(self, settings: Settings) -> dict[str, str]:
        """Every file the data stage reads (name → path or s3:// URI), for fingerprints."""
        return {"data": self.source}

    @abstractmethod
    def prepare_data(self, settings: Settings) -> PreparedData:
        """Ingest → snapshot → validate → clean, with exact accounting and quarantine."""

    @abstractmethod
    def feature_repo(self, settings: Settings) -> Path:
        """The Feast repo (folder with ``feature_store.yaml``) this task's features live in."""

    @abstractmethod
    def build_feature_tables(self, settings: Settings) -> FeatureTables:
        """Prepared tables → the feature views' Parquet sources and the entity table."""

    @abstractmethod
    def apply_features(self, settings: Settings) -> AppliedRepo:
        """Register the task's entities, feature views and feature service with Feast."""

    @abstractmethod
    def materialize_window(self, settings: Settings) -> tuple[date, date]:
        """The days whose latest feature values the online store must hold."""

    @abstractmethod
    def training_set(
        self, settings: Settings, start: date | None = None, end: date | None = None
    ) -> pd.DataFrame:
        """Point-in-time training rows: row id, [timestamp], model inputs, label.

        ``start`` / ``end`` bound the event timestamps (inclusive days) of time-based tasks;
        tasks without a timestamp return every row and ignore them.
        """

    @abstractmethod
    def online_model_columns(
        self, settings: Settings, requests: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Model input columns for validated request columns, enriched from the online store."""

    def materialize(
        self, settings: Settings, start: date | None = None, end: date | None = None
    ) -> Materialized:
        """Fill the online store with the latest values in ``[start, end]`` (default: the
        task's window). A task whose inputs all arrive with the request has nothing to load."""
        from e2eai.features.store import Materialized, materialize_repo

        default_start, default_end = self.materialize_window(settings)
        start, end = start or default_start, end or default_end
        if not self.feature_refs():
            return Materialized(str(start), str(end), [], {})
        return materialize_repo(self.feature_repo(settings), start, end)

    def warm_online_store(self, settings: Settings) -> None:  # noqa: B027 - optional hook
        """Open the serving store before traffic arrives (tasks with online features)."""

    @property
    def replays(self) -> bool:
        """Whether the task has production traffic to replay in time (``replay_traffic``)."""
        return type(self).replay_traffic is not Task.replay_traffic

    def replay_traffic(self, settings: Settings, start: date, end: date) -> pd.DataFrame:
        """Production traffic to replay: one row per request scheduled in ``[start, end]``
        (inclusive UTC days), in request-time order, with the task's ``row_id``, its
        request fields, ``request_time``, the ``label`` and ``label_time`` (when the outcome
        becomes known). Tasks that cannot be replayed in time raise TaskError."""
        from e2eai.tasks import TaskError

        raise TaskError(f"task {self.name!r} has no traffic to replay in time")

    def requests_from_frame(self, frame: pd.DataFrame) -> dict[str, Sequence[Any]]:
        """Rows of a training frame in the shape of prediction requests (for replays)."""
        return {f.name: frame[f.name].tolist() for f in self.request_fields}


class WholeInputTask(Task):
    """A task whose one input arrives whole with the request (an image, a message): no
    feature store, nothing to look up. Its feature steps run and do nothing: an empty
    sources folder, nothing registered, nothing materialized; the request is the input."""

    def feature_repo(self, settings: Settings) -> Path:
        return settings.home / "feature_repos" / self.name

    def build_feature_tables(self, settings: Settings) -> FeatureTables:
        repo = self.feature_repo(settings)
        (repo / "data").mkdir(parents=True, exist_ok=True)  # no sources: an empty folder
        return FeatureTables(repo=repo, rows={})

    def apply_features(self, settings: Settings) -> AppliedRepo:
        from e2eai.features.store import AppliedRepo

        return AppliedRepo(entities=[], feature_views=[], feature_services=[])

    def materialize_window(self, settings: Settings) -> tuple[date, date]:
        return date(2000, 1, 1), date(2000, 1, 1)

    def online_model_columns(
        self, settings: Settings, requests: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        name = self.features[0].name
        return {name: requests[name]}
