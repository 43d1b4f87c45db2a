"""The Feast feature store: apply the repo, build training sets, materialize, serve online.

Feast is imported lazily (it costs seconds): the CLI's start-up never pays for it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from e2eai.config import Settings
from e2eai.errors import E2eaiError
from e2eai.features.build import PLANES_VALID_FROM, flights_as_requests, flights_table_path
from e2eai.features.model_input import Columns, build_model_input, model_input_columns
from e2eai.schema import EVENT_TIMESTAMP, FEATURE_SERVICE, FLIGHT_ID, LABEL, feature_refs

if TYPE_CHECKING:
    from feast import FeatureStore

JOIN_KEYS: tuple[str, ...] = ("origin", "tailnum", "carrier", "route")


class FeatureStoreError(E2eaiError):
    """The feature repo is missing, not applied, or has no data for a request."""


def _repo_dir(settings: Settings) -> Path:
    repo = settings.features.repo.resolve()
    if not (repo / "feature_store.yaml").is_file():
        raise FeatureStoreError(f"{repo}: no feature_store.yaml (not a Feast repo)")
    return repo


def open_feature_store(settings: Settings) -> FeatureStore:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(_repo_dir(settings)))


@contextlib.contextmanager
def _inside_repo(repo: Path) -> Iterator[None]:
    """Feast imports repo files as top-level modules from the repo folder: give it that."""
    names = {p.stem for p in repo.glob("*.py")}
    for name in names:
        sys.modules.pop(name, None)  # another repo's modules of the same name
    cwd = os.getcwd()
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path.remove(str(repo))


@dataclass(frozen=True)
class AppliedRepo:
    entities: list[str]
    feature_views: list[str]
    feature_services: list[str]


def apply_repo(settings: Settings) -> AppliedRepo:
    """Register the repo's entities, views and services (what ``feast apply`` does)."""
    from feast.repo_operations import parse_repo

    store = open_feature_store(settings)
    repo = settings.features.repo.resolve()
    with _inside_repo(repo):
        contents = parse_repo(repo)
    objects = [*contents.entities, *contents.feature_views, *contents.feature_services]
    store.apply(objects)
    return AppliedRepo(
        entities=sorted(e.name for e in contents.entities),
        feature_views=sorted(v.name for v in contents.feature_views),
        feature_services=sorted(s.name for s in contents.feature_services),
    )


def _utc(day: date, end_of_day: bool = False) -> pd.Timestamp:
    moment = datetime.combine(day, time.max if end_of_day else time.min)
    return pd.Timestamp(moment, tz="UTC")


def _feature_service(store: FeatureStore):
    try:
        return store.get_feature_service(FEATURE_SERVICE)
    except Exception as exc:  # feast raises its own NotFound types per registry backend
        raise FeatureStoreError(
            f"feature service {FEATURE_SERVICE!r} is not registered: run "
            "`e2eai features apply` (or `feast -c feature_repo apply`) first"
        ) from exc


def entity_frame(settings: Settings, start: date, end: date) -> pd.DataFrame:
    """Flights scheduled in ``[start, end]`` (UTC days) from the feature step's table."""
    path = flights_table_path(settings)
    if not path.is_file():
        raise FeatureStoreError(f"{path}: no flight table; run `e2eai data prepare` first")
    flights = pd.read_parquet(path)
    ts = flights[EVENT_TIMESTAMP]
    window = flights[(ts >= _utc(start)) & (ts <= _utc(end, end_of_day=True))]
    return window.reset_index(drop=True)


def training_set(settings: Settings, start: date, end: date) -> pd.DataFrame:
    """Point-in-time correct training rows for flights scheduled in ``[start, end]``.

    Feast joins each flight, at its scheduled departure, with the latest feature values
    stamped at or before it; ``build_model_input`` then derives the model's columns exactly
    as the serving transformer does.
    """
    store = open_feature_store(settings)
    flights = entity_frame(settings, start, end)
    if flights.empty:
        raise FeatureStoreError(f"no flights scheduled between {start} and {end}")
    entity_df = flights[[FLIGHT_ID, EVENT_TIMESTAMP, *JOIN_KEYS]]
    joined = store.get_historical_features(
        entity_df=entity_df, features=_feature_service(store)
    ).to_df()
    # Feast does not keep the entity order: re-align on the flight id.
    joined = joined.set_index(FLIGHT_ID).loc[flights[FLIGHT_ID]].reset_index()
    joined.index = flights.index
    inputs = build_model_input(
        flights_as_requests(flights),
        joined.drop(columns=[EVENT_TIMESTAMP, *JOIN_KEYS]),
        settings.features.windows_hours,
        settings.features.rate_prior,
    )
    # carrier and origin are both join keys and model inputs: they come from ``inputs``.
    keys = flights[[FLIGHT_ID, EVENT_TIMESTAMP, "tailnum", "route"]]
    out = pd.concat([keys, inputs, flights[[LABEL, "arr_delay"]]], axis=1)
    return out.sort_values([EVENT_TIMESTAMP, FLIGHT_ID]).reset_index(drop=True)


@dataclass(frozen=True)
class Materialized:
    start: str
    end: str
    feature_views: list[str]
    online_entities: dict[str, int]


def materialize(settings: Settings, start: date, end: date) -> Materialized:
    """Load the latest feature values in ``[start, end]`` into the SQLite online store."""
    store = open_feature_store(settings)
    views = [v.name for v in store.list_feature_views()]
    if not views:
        raise FeatureStoreError("no feature views registered: run `e2eai features apply` first")
    # Feast prints progress on stdout, which belongs to the CLI's JSON: send it to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        store.materialize(
            start_date=_utc(start).to_pydatetime(),
            end_date=_utc(end, end_of_day=True).to_pydatetime(),
        )
    return Materialized(
        start=str(start),
        end=str(end),
        feature_views=sorted(views),
        online_entities=online_row_counts(settings),
    )


def online_row_counts(settings: Settings) -> dict[str, int]:
    """Entities per feature view in the SQLite online store (what materialize filled)."""
    import sqlite3

    store = open_feature_store(settings)
    path = Path(store.config.online_store.path)
    if not path.is_absolute():
        path = settings.features.repo.resolve() / path
    if not path.exists():
        return {}
    counts: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            view = table.removeprefix(f"{store.project}_")
            query = f'select count(distinct entity_key) from "{table}"'
            counts[view] = db.execute(query).fetchone()[0]
    return counts


@functools.lru_cache(maxsize=8)
def _serving_store(repo: Path) -> FeatureStore:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


@functools.lru_cache(maxsize=16)
def _online_refs(windows_hours: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(feature_refs(windows_hours))


def _as_list(values: object) -> list:
    if isinstance(values, list):
        return values
    return np.asarray(values, dtype=object).tolist()  # plain str, not numpy scalars


def online_feature_values(settings: Settings, requests: Columns) -> dict[str, list]:
    """Online feature values (name → one value per request, None when the store has none).

    ``requests`` is a DataFrame or a mapping of request field → values; the rows are looked
    up in one ``get_online_features`` call and returned in the same order.
    """
    # One FeatureStore per repo for the life of the process: opening one and loading its
    # registry costs ~20 ms, twice the whole online latency budget. Feast refreshes the
    # cached registry itself (registry cache TTL), and online reads go to SQLite each time.
    store = _serving_store(_repo_dir(settings))
    origins = _as_list(requests["origin"])
    dests = _as_list(requests["dest"])
    entities = {
        "origin": origins,
        "tailnum": _as_list(requests["tailnum"]),
        "carrier": _as_list(requests["carrier"]),
        "route": [f"{origin}-{dest}" for origin, dest in zip(origins, dests, strict=True)],
    }
    values = store.get_online_features(
        features=list(_online_refs(tuple(settings.features.windows_hours))),
        entity_rows=entities,  # columnar: Feast would transpose a list of rows back
    ).to_dict()
    for key in JOIN_KEYS:
        values.pop(key, None)
    return values


def online_features(settings: Settings, requests: pd.DataFrame) -> pd.DataFrame:
    """Online feature values for flight requests, aligned with ``requests``' index."""
    return pd.DataFrame(online_feature_values(settings, requests), index=requests.index)


def online_model_columns(settings: Settings, requests: Columns) -> dict[str, np.ndarray]:
    """Model input columns for live requests: online features + the training-time derivation.

    What the serving transformer feeds to the model; no DataFrame on the way (see
    ``e2eai.features.model_input``).
    """
    return model_input_columns(
        requests,
        online_feature_values(settings, requests),
        settings.features.windows_hours,
        settings.features.rate_prior,
    )


def warm_online_store(settings: Settings) -> None:
    """Open the serving store and look up one placeholder flight, before traffic arrives.

    The first lookup imports Feast, loads the registry and opens SQLite (seconds): a server
    does it before it reports ready, not on its first request. Raises
    :class:`FeatureStoreError` when the repo cannot serve (not applied, not materialized).
    """
    placeholder = {
        "carrier": ["--"],
        "flight": [1],
        "origin": ["---"],
        "dest": ["---"],
        "tailnum": ["-"],
        "scheduled_departure": np.array(["2013-01-01T00:00"], dtype="datetime64[ns]"),
        "distance": [1.0],
    }
    try:
        online_model_columns(settings, placeholder)
    except FeatureStoreError:
        raise
    except Exception as exc:  # feast/sqlite raise their own types for a missing table
        raise FeatureStoreError(
            f"{settings.features.repo}: the online store cannot serve ({exc}); run "
            "`e2eai features apply` and `e2eai features materialize` first"
        ) from exc


def online_model_input(settings: Settings, requests: pd.DataFrame) -> pd.DataFrame:
    """Model input for live requests as a DataFrame on ``requests``' index."""
    return pd.DataFrame(online_model_columns(settings, requests), index=requests.index)


def default_materialize_window(settings: Settings) -> tuple[date, date]:
    """From the static plane attributes' stamp to the end of the data window."""
    return PLANES_VALID_FROM.date(), settings.data.end
