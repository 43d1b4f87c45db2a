"""Tabular tasks declared in a TOML task file, with no code (``docs/tasks.md``).

:func:`load_task_file` reads and checks the file (:mod:`e2eai.tasks.task_file`) and builds a
:class:`TabularTask`: the generic :class:`~e2eai.tasks.base.Task` schema derived from the
file, whose steps are the data stage (:mod:`e2eai.tasks.tabular_data`) and the Feast side
(:mod:`e2eai.tasks.tabular_features`) shared by every task file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e2eai.schema import Entity, Feature, FeatureView, RequestField
from e2eai.tasks.base import FeatureTables, Task
from e2eai.tasks.table_source import PACKAGE_PREFIX
from e2eai.tasks.task_file import LABEL, ColumnSpec, TaskFileSpec, read_task_file

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from e2eai.config import Settings
    from e2eai.data.prepare import PreparedData
    from e2eai.features.store import AppliedRepo


def _feature(column: ColumnSpec, view: str) -> Feature:
    store = column.source == "feature_store"
    return Feature(
        name=column.name,
        kind=column.kind,
        source="feature_view" if store else "request",
        description=column.description,
        minimum=column.minimum,
        maximum=column.maximum,
        view=view if store else None,
        categories=column.categories,
        nullable=column.nullable,
    )


def _request_field(column: ColumnSpec) -> RequestField:
    return RequestField(
        name=column.name,
        type="float" if column.kind == "numeric" else "str",
        description=column.description,
        minimum=column.minimum,
        maximum=column.maximum,
        nullable=column.nullable,
    )


@dataclass(frozen=True)
class TabularTask(Task):
    """A binary-classification task on one table, as its task file declares it."""

    file: Path = field(kw_only=True)
    spec: TaskFileSpec = field(kw_only=True)

    @classmethod
    def from_spec(cls, spec: TaskFileSpec, file: Path) -> TabularTask:
        view = f"{spec.name}_features"
        has_store = bool(spec.store_columns)
        request_fields = [_request_field(c) for c in spec.request_columns]
        entities: tuple[Entity, ...] = ()
        views: tuple[FeatureView, ...] = ()
        if has_store:
            described = (spec.entity.description if spec.entity else "") or (
                f"Key of one {spec.name} row"
                + (" (its source row number)." if spec.generated_key else ".")
            )
            request_fields.insert(0, RequestField(spec.key_column, "str", described))
            entities = (Entity(spec.key_column, spec.key_column, described),)
            views = (
                FeatureView(
                    view,
                    spec.key_column,
                    timedelta(0),
                    f"Feature-store columns of the {spec.name} task.",
                ),
            )
        label = spec.label
        positive_name = label.positive_name or (
            label.positive[0] if label.positive and len(label.positive) == 1 else "positive"
        )
        return cls(
            name=spec.name,
            description=spec.description,
            source=spec.data.source,
            label=LABEL,
            label_rule=label.rule,
            row_id=spec.row_id,
            timestamp=spec.timestamp,
            features=tuple(_feature(c, view) for c in spec.columns),
            request_fields=tuple(request_fields),
            entities=entities,
            feature_views=views,
            feature_service=f"{spec.name}_model" if has_store else "",
            slices=spec.slices,
            families=spec.families,
            positive_name=positive_name,
            gates=tuple(
                (name, value)
                for name, value in (spec.gates.model_dump() if spec.gates else {}).items()
                if value is not None
            ),
            file=file,
            spec=spec,
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "task_file": str(self.file)}

    def data_sources(self, settings: Settings) -> dict[str, str]:
        from e2eai.tasks.table_source import package_file

        source = self.source
        return {"data": str(package_file(source)) if source.startswith(PACKAGE_PREFIX) else source}

    def prepare_data(self, settings: Settings) -> PreparedData:
        from e2eai.tasks.tabular_data import prepare_tabular

        return prepare_tabular(self, settings)

    def feature_repo(self, settings: Settings) -> Path:
        from e2eai.tasks.tabular_features import ensure_repo

        return ensure_repo(self, settings)

    def build_feature_tables(self, settings: Settings) -> FeatureTables:
        from e2eai.tasks.tabular_features import build_tabular_feature_tables

        return build_tabular_feature_tables(self, settings)

    def apply_features(self, settings: Settings) -> AppliedRepo:
        from e2eai.tasks.tabular_features import apply_tabular_features

        return apply_tabular_features(self, settings)

    def materialize_window(self, settings: Settings) -> tuple[date, date]:
        from e2eai.tasks.tabular_features import tabular_materialize_window

        return tabular_materialize_window(self, settings)

    def training_set(
        self, settings: Settings, start: date | None = None, end: date | None = None
    ) -> pd.DataFrame:
        from e2eai.tasks.tabular_features import tabular_training_set

        return tabular_training_set(self, settings, start, end)

    def online_model_columns(
        self, settings: Settings, requests: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        from e2eai.tasks.tabular_features import tabular_online_model_columns

        return tabular_online_model_columns(self, settings, requests)

    def warm_online_store(self, settings: Settings) -> None:
        from e2eai.tasks.tabular_features import tabular_warm_online_store

        tabular_warm_online_store(self, settings)


def load_task_file(path: Path, settings: Settings | None = None) -> TabularTask:
    """The task a TOML task file declares; a bad file raises a TaskError naming the key."""
    path = Path(path)
    spec = read_task_file(path)
    source = spec.data.source
    if not source.startswith(("s3://", PACKAGE_PREFIX)) and not Path(source).is_absolute():
        # A relative data path is relative to the task file, wherever the process runs.
        data = spec.data.model_copy(update={"source": str((path.parent / source).resolve())})
        spec = spec.model_copy(update={"data": data})
    return TabularTask.from_spec(spec, path)
