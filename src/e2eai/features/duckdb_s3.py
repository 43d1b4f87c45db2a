"""Feast's DuckDB offline store, reading the feature views' Parquet sources from S3.

Feast's own DuckDB store reads ``s3://`` through ibis, which installs DuckDB's ``httpfs``
extension at run time from DuckDB's extension site. No package ships ``httpfs`` for the
DuckDB this project pins (PyPI's ``duckdb-extension-httpfs`` stops at 1.5.5,
``duckdb-ext-httpfs`` at 1.4.4; DuckDB extensions load only into the exact version they were
built for), and a pod may not reach that site either. This store hands DuckDB an fsspec
filesystem over pyarrow's own S3 client instead (``pyarrow.fs.S3FileSystem``, compiled into
the pinned pyarrow; fsspec's ``ArrowFSWrapper``): DuckDB still plans and runs the
point-in-time joins and reads only the row groups and columns it needs, by ranged GETs.
``s3fs`` would be the usual fsspec S3 filesystem, but its aiobotocore pins botocore below
the boto3 this project pins.

Select it in ``feature_store.yaml``::

    offline_store:
      type: e2eai.features.duckdb_s3.DuckDBS3OfflineStore

The S3 endpoint (MinIO, moto) is ``s3_endpoint_url`` there, else the standard
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables, else the platform's
``artifacts.s3_endpoint_url`` setting; none of them means AWS itself. Credentials come from
the AWS default chain (environment, profile, instance role). Sources that are not on S3
are read exactly as Feast's DuckDB store reads them.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from feast.infra.offline_stores import duckdb as feast_duckdb
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.ibis import (
    get_historical_features_ibis,
    pull_all_from_table_or_query_ibis,
    pull_latest_from_table_or_query_ibis,
)
from pydantic import StrictStr

if TYPE_CHECKING:
    import pandas as pd
    from feast.data_source import DataSource
    from feast.feature_view import FeatureView
    from feast.infra.offline_stores.offline_store import RetrievalJob
    from feast.infra.registry.base_registry import BaseRegistry
    from feast.repo_config import RepoConfig
    from ibis.expr.types import Table

S3_SCHEME = "s3://"


class DuckDBS3OfflineStoreConfig(feast_duckdb.DuckDBOfflineStoreConfig):
    """Feast's DuckDB offline store settings, plus where S3 is."""

    type: StrictStr = "e2eai.features.duckdb_s3.DuckDBS3OfflineStore"
    s3_endpoint_url: StrictStr | None = None
    """S3 endpoint URL (``http://minio:9000``); unset: the environment's or AWS's."""
    s3_region: StrictStr | None = None
    """Region for request signing; unset: AWS_REGION, AWS_DEFAULT_REGION or us-east-1."""


def s3_endpoint_url(config: DuckDBS3OfflineStoreConfig) -> str | None:
    """The endpoint sources are read from: the config's, the AWS variables', or e2eai's."""
    for candidate in (
        config.s3_endpoint_url,
        os.environ.get("AWS_ENDPOINT_URL_S3"),
        os.environ.get("AWS_ENDPOINT_URL"),
    ):
        if candidate:
            return candidate
    from e2eai.config import get_settings

    return get_settings().artifacts.s3_endpoint_url


def _s3_region(config: DuckDBS3OfflineStoreConfig) -> str:
    return (
        config.s3_region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


_registered: dict[int, tuple[str | None, str]] = {}
"""Per DuckDB connection (by id): the endpoint and region its ``s3`` filesystem talks to."""
_registering = threading.Lock()


def _use_s3_filesystem(backend: Any, endpoint: str | None, region: str) -> None:
    """Give ``backend``'s DuckDB connection an ``s3://`` filesystem for this endpoint.

    One per connection: DuckDB refuses a second filesystem named ``s3``, so a different
    endpoint replaces the first (a process serves one cluster; tests start new servers).
    """
    import pyarrow.fs
    from fsspec.implementations.arrow import ArrowFSWrapper

    wanted = (endpoint, region)
    connection = backend.con
    with _registering:
        registered = "s3" in connection.list_filesystems()
        if registered and _registered.get(id(connection)) == wanted:
            return
        options: dict[str, Any] = {"region": region}
        if endpoint:
            parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
            options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
        filesystem = ArrowFSWrapper(pyarrow.fs.S3FileSystem(**options))
        if registered:
            connection.unregister_filesystem("s3")
        connection.register_filesystem(filesystem)
        _registered[id(connection)] = wanted


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_s3_parquet(path: str, config: DuckDBS3OfflineStoreConfig) -> Table:
    """An ibis table over the Parquet file(s) at ``path`` (``s3://bucket/key``), lazily read.

    On ibis's default DuckDB backend, where Feast's joins run. Through a view of DuckDB's
    ``read_parquet`` rather than ``ibis.read_parquet``, which would install ``httpfs`` for
    any ``s3://`` path first.
    """
    import ibis

    backend = ibis.get_backend()
    _use_s3_filesystem(backend, s3_endpoint_url(config), _s3_region(config))
    name = ibis.util.gen_name("s3_parquet")
    # Not closed: DuckDB's execute returns the backend's own connection, not a cursor.
    backend.raw_sql(f"CREATE TEMP VIEW {name} AS SELECT * FROM read_parquet({_quoted(path)})")
    return backend.table(name)


def _reader(config: RepoConfig):
    """Feast's source reader callback: S3 Parquet here, everything else as Feast reads it."""
    offline = config.offline_store

    def read(data_source: DataSource, repo_path: str) -> Table:
        if isinstance(data_source, FileSource) and data_source.path.startswith(S3_SCHEME):
            return read_s3_parquet(data_source.path, offline)
        # Feast's own reader (module-private, but the one its DuckDB store calls): local
        # files, Delta and the rest behave exactly as under ``type: duckdb``.
        return feast_duckdb._read_data_source(data_source, repo_path)

    return read


def _within_reach(read, feature_views: list[FeatureView], entity_df: pd.DataFrame | str):
    """``read``, with each source cut to the rows a point-in-time join of ``entity_df`` can use.

    Feast's ibis join (``point_in_time_join``) keeps a feature row for an entity row when the
    keys match, ``feature_ts <= entity_ts`` and, for a view with a TTL,
    ``feature_ts + ttl >= entity_ts``; it joins every row of a source before applying that.
    A row stamped after the last entity timestamp, or more than the view's TTL before the
    first, can match no entity row: dropping those first leaves the answer as it was and
    makes a window's join cost the window's rows, not the source's years (a January–April
    training set took 4.4× longer from four years of sources than from one).
    """
    import ibis
    import ibis.expr.datatypes as dt
    import pandas as pd
    from feast.infra.offline_stores import offline_utils

    if not isinstance(entity_df, pd.DataFrame) or entity_df.empty:
        return read
    column = offline_utils.infer_event_timestamp_from_entity_df(dict(entity_df.dtypes))
    stamps = pd.to_datetime(entity_df[column], utc=True)
    first, last = stamps.min(), stamps.max()
    ttls: dict[str, timedelta | None] = {}
    for view in feature_views:
        source = view.batch_source
        if source is None:
            continue
        ttl = view.ttl if view.ttl and view.ttl > timedelta(0) else None
        # One source behind several views: the longest reach (no TTL reaches back forever).
        known = ttls.get(source.name, ttl)
        ttls[source.name] = None if ttl is None or known is None else max(ttl, known)

    def read_within_reach(data_source: DataSource, repo_path: str) -> Table:
        table = read(data_source, repo_path)
        if data_source.name not in ttls or not data_source.timestamp_field:
            return table
        stamp = table[data_source.timestamp_field].cast(dt.Timestamp(timezone="UTC"))
        keep = stamp <= ibis.literal(last.to_pydatetime())
        ttl = ttls[data_source.name]
        if ttl is not None:
            keep &= stamp >= ibis.literal((first - ttl).to_pydatetime())
        return table.filter(keep)

    return read_within_reach


class DuckDBS3OfflineStore(feast_duckdb.DuckDBOfflineStore):
    """Feast's DuckDB offline store whose S3 Parquet sources are read without ``httpfs``,
    and whose point-in-time joins read only the rows an entity window can use (local
    sources too: the repo's ``feature_store.yaml`` selects it as well)."""

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        return pull_latest_from_table_or_query_ibis(
            config=config,
            data_source=data_source,
            join_key_columns=join_key_columns,
            feature_name_columns=feature_name_columns,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            start_date=start_date,
            end_date=end_date,
            data_source_reader=_reader(config),
            data_source_writer=feast_duckdb._write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
        )

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        return get_historical_features_ibis(
            config=config,
            feature_views=feature_views,
            feature_refs=feature_refs,
            entity_df=entity_df,
            registry=registry,
            project=project,
            full_feature_names=full_feature_names,
            data_source_reader=_within_reach(_reader(config), feature_views, entity_df),
            data_source_writer=feast_duckdb._write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
            filter_by_created_timestamp=filter_by_created_timestamp,
        )

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        return pull_all_from_table_or_query_ibis(
            config=config,
            data_source=data_source,
            join_key_columns=join_key_columns,
            feature_name_columns=feature_name_columns,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            start_date=start_date,
            end_date=end_date,
            data_source_reader=_reader(config),
            data_source_writer=feast_duckdb._write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
        )
