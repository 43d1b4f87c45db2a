"""The Feast feature store: apply a task's definitions, build training sets, materialize, serve.

Repo-level operations (``open_feature_store``, ``apply_objects``, ``apply_repo_files``,
``historical_features``, ``online_values``, ``materialize_repo``) that work on any Feast repo:
what tasks build their feature steps on (``Task.apply_features``, ``Task.materialize``,
``Task.training_set``, ``Task.online_model_columns``). Nothing here knows a task.

Feast is imported lazily (it costs seconds): the CLI's start-up never pays for it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e2eai.errors import E2eaiError

if TYPE_CHECKING:
    from feast import FeatureStore


class FeatureStoreError(E2eaiError):
    """The feature repo is missing, not applied, or has no data for a request."""


def repo_dir(repo: Path) -> Path:
    repo = Path(repo).resolve()
    if not (repo / "feature_store.yaml").is_file():
        raise FeatureStoreError(f"{repo}: no feature_store.yaml (not a Feast repo)")
    return repo


def open_feature_store(repo: Path) -> FeatureStore:
    """A fresh ``FeatureStore`` over the Feast repo ``repo``."""
    from feast import FeatureStore

    _quiet_library_deprecations()
    return FeatureStore(repo_path=str(repo_dir(repo)))


@functools.cache
def _quiet_library_deprecations() -> None:
    """Feast turns on every library's DeprecationWarning at import ("once", process-wide);
    ibis's (Feast's DuckDB offline store) would then reach the user's terminal on each
    retrieval. They are for ibis's developers: ignored again, ours and Feast's own stay."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ibis(\.|$)")


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


def apply_objects(repo: Path, objects: Sequence[Any]) -> AppliedRepo:
    """Register Feast objects (entities, views, services) in the repo's registry."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView

    store = FeatureStore(repo_path=str(repo_dir(repo)))
    store.apply(list(objects))
    return AppliedRepo(
        entities=sorted(o.name for o in objects if isinstance(o, Entity)),
        feature_views=sorted(o.name for o in objects if isinstance(o, FeatureView)),
        feature_services=sorted(o.name for o in objects if isinstance(o, FeatureService)),
    )


def apply_repo_files(repo: Path) -> AppliedRepo:
    """What ``feast apply`` does for a repo of Python definition files."""
    from feast.repo_operations import parse_repo

    repo = repo_dir(repo)
    with _inside_repo(repo):
        contents = parse_repo(repo)
    return apply_objects(
        repo, [*contents.entities, *contents.feature_views, *contents.feature_services]
    )


def utc_day(day: date, end_of_day: bool = False) -> pd.Timestamp:
    moment = datetime.combine(day, time.max if end_of_day else time.min)
    return pd.Timestamp(moment, tz="UTC")


def feature_service(store: FeatureStore, name: str):
    try:
        return store.get_feature_service(name)
    except Exception as exc:  # feast raises its own NotFound types per registry backend
        raise FeatureStoreError(
            f"feature service {name!r} is not registered: run `e2eai features apply` first"
        ) from exc


def historical_features(
    repo: Path, entity_df: pd.DataFrame, service: str, chunk_rows: int = 60_000
) -> pd.DataFrame:
    """Point-in-time join of ``entity_df`` (keys + ``event_timestamp``) with a service.

    Asked in spans of ``chunk_rows`` entity rows in timestamp order: Feast's offline store
    reads each feature view over the entity rows' time span (less the view's TTL), and on
    DuckDB one join of 2013's 327k flights peaks at 5.6 GB where a month peaks at 1.0 GB.
    Rows come back in Feast's order (not the entity order), spans one after the other.
    """
    store = open_feature_store(repo)
    features = feature_service(store, service)
    if len(entity_df) <= chunk_rows:
        return store.get_historical_features(entity_df=entity_df, features=features).to_df()
    ordered = entity_df.sort_values("event_timestamp", kind="stable")
    parts = [
        store.get_historical_features(
            entity_df=ordered.iloc[first : first + chunk_rows], features=features
        ).to_df()
        for first in range(0, len(ordered), chunk_rows)
    ]
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class Materialized:
    start: str
    end: str
    feature_views: list[str]
    online_entities: dict[str, int]


def materialize_repo(repo: Path, start: date, end: date) -> Materialized:
    """Load the latest feature values in ``[start, end]`` into the repo's online store."""
    store = open_feature_store(repo)
    views = [v.name for v in store.list_feature_views()]
    if not views:
        raise FeatureStoreError("no feature views registered: run `e2eai features apply` first")
    # Feast prints progress on stdout, which belongs to the CLI's JSON: send it to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        store.materialize(
            start_date=utc_day(start).to_pydatetime(),
            end_date=utc_day(end, end_of_day=True).to_pydatetime(),
        )
    return Materialized(
        start=str(start),
        end=str(end),
        feature_views=sorted(views),
        online_entities=online_row_counts(repo),
    )


def online_row_counts(repo: Path) -> dict[str, int]:
    """Entities per feature view in the online store (what materialize filled).

    Counted in SQLite (local) and Redis (cluster); other online stores report nothing.
    """
    import sqlite3

    from feast import FeatureStore
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    repo = repo_dir(repo)
    store = FeatureStore(repo_path=str(repo))
    if isinstance(store.config.online_store, RedisOnlineStoreConfig):
        return _redis_row_counts(store)
    if not isinstance(store.config.online_store, SqliteOnlineStoreConfig):
        return {}
    path = Path(store.config.online_store.path)
    if not path.is_absolute():
        path = repo / path
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


def _redis_row_counts(store: FeatureStore) -> dict[str, int]:
    """Entities per feature view in a (single-node) Redis online store.

    Feast keeps one hash per entity key, named by the serialized key followed by the
    project, with a ``_ts:<view>`` field for each feature view written to it.
    """
    import redis
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisType

    config = store.config.online_store
    if config.redis_type != RedisType.redis:
        return {}
    # Feast's own parser of its connection string ("host:port,db=0,password=…").
    nodes, params = RedisOnlineStore._parse_connection_string(config.connection_string)
    client = redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params)
    pattern = "*" + "".join(f"[{c}]" if c in "*?[]\\" else c for c in store.project)
    counts: dict[str, int] = {}
    try:
        keys = list(client.scan_iter(match=pattern.encode(), count=1000))
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hkeys(key)
            for fields in pipe.execute():
                for field in fields:
                    if field.startswith(b"_ts:"):
                        view = field[4:].decode()
                        counts[view] = counts.get(view, 0) + 1
    finally:
        client.close()
    return dict(sorted(counts.items()))


@functools.lru_cache(maxsize=8)
def serving_store(repo: Path) -> FeatureStore:
    """One FeatureStore per repo for the life of the process.

    Opening one and loading its registry costs ~20 ms, twice the whole online latency
    budget. Feast refreshes the cached registry itself (registry cache TTL), and online
    reads go to the online store each time.
    """
    from feast import FeatureStore

    _quiet_library_deprecations()
    return FeatureStore(repo_path=str(repo_dir(repo)))


def as_list(values: object) -> list:
    if isinstance(values, list):
        return values
    return np.asarray(values, dtype=object).tolist()  # plain str, not numpy scalars


def online_values(
    repo: Path, refs: Sequence[str], entity_rows: Mapping[str, list]
) -> dict[str, list]:
    """Online feature values (ref name → one value per row, None when the store has none).

    ``entity_rows`` is columnar (join key → values): Feast would transpose a list of rows
    back. Join keys are dropped from the answer.
    """
    response = serving_store(repo).get_online_features(
        features=list(refs), entity_rows=dict(entity_rows)
    )
    values = _response_values(response)
    for key in entity_rows:
        values.pop(key, None)
    return values


_NUMERIC_VALUES = frozenset({"int32_val", "int64_val", "float_val", "double_val", "bool_val"})
"""Value kinds Feast's own conversion returns as they are (``getattr(value, kind)``)."""


def _response_values(response: Any) -> dict[str, list]:
    """``OnlineResponse.to_dict()``, with numeric scalars read straight from the proto.

    Feast converts every value through one general function (lists, maps, UUIDs,
    timestamps); for a numeric scalar that returns the proto's field as it is. Reading it
    directly gives the same values at a fraction of the cost (it was a fifth of a batch's
    time in the predictor); every other kind still goes through Feast's conversion (without
    its UUID hint for string features, which no task here has).
    """
    from feast.type_map import feast_value_type_to_python_type

    out: dict[str, list] = {}
    for name, vector in zip(
        response.proto.metadata.feature_names.val, response.proto.results, strict=True
    ):
        column: list[Any] = []
        for value in vector.values:
            kind = value.WhichOneof("val")
            if kind is None:
                column.append(None)
            elif kind in _NUMERIC_VALUES:
                column.append(getattr(value, kind))
            else:
                column.append(feast_value_type_to_python_type(value))
        out[name] = column
    return out


@contextlib.contextmanager
def online_store_check(repo: Path) -> Iterator[None]:
    """Turn whatever Feast or SQLite raise for a repo that cannot serve into one clear error."""
    try:
        yield
    except FeatureStoreError:
        raise
    except Exception as exc:  # feast/sqlite raise their own types for a missing table
        raise FeatureStoreError(
            f"{repo}: the online store cannot serve ({exc}); run "
            "`e2eai features apply` and `e2eai features materialize` first"
        ) from exc
