"""The feature step: prepared tables → the Parquet sources of the Feast feature views.

Also writes the flight entity table (keys, request fields, label) that training sets are
built from by a point-in-time join.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from e2eai.config import Settings
from e2eai.tasks.base import FeatureTables
from e2eai.tasks.flights.definitions import SOURCES_DIR, source_file
from e2eai.tasks.flights.model_input import SCHEDULED_DEPARTURE
from e2eai.tasks.flights.prepare import load_prepared_flights
from e2eai.tasks.flights.rotation import rotation_snapshots
from e2eai.tasks.flights.schema import (
    DEPARTURE_STATS_VIEW,
    DEPARTURE_WINDOWS_HOURS,
    EVENT_TIMESTAMP,
    FLIGHT_ID,
    LABEL,
    ROTATION_VIEW,
    STATS_ENTITIES,
    departure_feature_names,
)
from e2eai.tasks.flights.trailing import delay_stats_snapshots

FLIGHTS_TABLE = "flights"
PLANES_VALID_FROM = pd.Timestamp("2000-01-01", tz="UTC")
"""Registry attributes are static: stamped once, before any flight, with a long TTL."""

ENTITY_COLUMNS: tuple[str, ...] = (
    FLIGHT_ID, EVENT_TIMESTAMP, "origin", "tailnum", "carrier", "route", "dest", "flight",
    "distance", LABEL, "arr_delay", "dep_delay", "arrived_at", "departed_at",
)  # fmt: skip


def flights_table_path(settings: Settings) -> Path:
    return settings.features.repo / SOURCES_DIR / f"{FLIGHTS_TABLE}.parquet"


def _write(frame: pd.DataFrame, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return len(frame)


def build_feature_tables(settings: Settings) -> FeatureTables:
    """Compute every feature view's source table from the prepared data and write it.

    Each table is written as soon as it is computed and let go: at ten years of flights,
    holding them all until the end was about a gigabyte of the step's peak memory.
    """
    prepared = load_prepared_flights(settings)
    flights, weather, planes = prepared["flights"], prepared["weather"], prepared["planes"]
    del prepared
    repo = settings.features.repo
    cfg = settings.features
    rows: dict[str, int] = {}

    def write(name: str, frame: pd.DataFrame) -> None:
        rows[name] = _write(frame, repo / source_file(name))

    write("origin_weather_hourly", weather)
    write("plane_attributes", planes.assign(**{EVENT_TIMESTAMP: PLANES_VALID_FROM}))
    del weather, planes
    for entity in STATS_ENTITIES:
        write(
            f"{entity}_delay_stats",
            delay_stats_snapshots(
                flights, entity, cfg.windows_hours, cfg.rate_prior, cfg.rate_prior_weight
            ),
        )
    dep_delay = flights["dep_delay"] >= settings.data.delay_threshold_minutes
    # A departure counts from the later of its actual and scheduled time: a flight that
    # left early must not show up in its own congestion features.
    counted_at = flights["departed_at"].where(
        flights["departed_at"] > flights[EVENT_TIMESTAMP], flights[EVENT_TIMESTAMP]
    )
    write(
        DEPARTURE_STATS_VIEW,
        delay_stats_snapshots(
            flights.assign(dep_delayed=dep_delay.astype("int8"), departure_counted_at=counted_at),
            "origin",
            DEPARTURE_WINDOWS_HOURS,
            cfg.rate_prior,
            cfg.rate_prior_weight,
            at="departure_counted_at",
            delayed="dep_delayed",
            names=departure_feature_names,
        ),
    )
    del dep_delay, counted_at
    write(ROTATION_VIEW, rotation_snapshots(flights))

    entities = flights[list(ENTITY_COLUMNS)].copy()
    del flights
    entities["flight"] = entities["flight"].astype("int64")
    rows[FLIGHTS_TABLE] = _write(entities, flights_table_path(settings))
    return FeatureTables(repo=repo, rows=rows)


def flights_as_requests(flights: pd.DataFrame) -> pd.DataFrame:
    """Flight rows in the shape of prediction requests (``schema.REQUEST_FIELDS``)."""
    return pd.DataFrame(
        {
            "carrier": flights["carrier"],
            "flight": flights["flight"],
            "origin": flights["origin"],
            "dest": flights["dest"],
            "tailnum": flights["tailnum"],
            SCHEDULED_DEPARTURE: flights[EVENT_TIMESTAMP],
            "distance": flights["distance"],
        },
        index=flights.index,
    )
