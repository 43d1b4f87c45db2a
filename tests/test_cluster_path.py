"""The cluster configuration, run against the real engines it names.

``feature_repo/feature_store.cluster.yaml`` as it is in the checkout, its ``${VAR}``
placeholders filled from the environment: the Feast registry in PostgreSQL, the online store
in Redis (a ``redis-server`` of this module's own on a free loopback port), the feature
views' Parquet sources in S3 (moto's S3 server, over HTTP), read by DuckDB through
``e2eai.features.duckdb_s3``. On the session's ten real January days (``flight_window_run``,
the local DuckDB + SQLite repo) the cluster repo must agree with the local one: the same
views applied, the same entities materialized, the same point-in-time training set and the
same online values. Then the model registry on PostgreSQL with its artifacts in S3, and the
app's database on PostgreSQL, each through the library's own calls.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import CHECKOUT_FEATURE_REPO, FLIGHT_WINDOW, FlightWindowRun, copy_feature_repo

from e2eai.config import ArtifactSettings, RegistrySettings, Settings
from e2eai.features.store import AppliedRepo, Materialized, open_feature_store
from e2eai.storage import open_store
from e2eai.tasks import load_task
from e2eai.tasks.flights.definitions import source_file
from e2eai.tasks.flights.feature_tables import flights_as_requests, flights_table_path
from e2eai.tasks.flights.schema import FEATURE_SERVICE
from e2eai.tasks.flights.store import entity_frame, online_feature_values

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CLUSTER_YAML = CHECKOUT_FEATURE_REPO / "feature_store.cluster.yaml"
ONLINE_SAMPLE = 300
"""Flights whose online features are looked up in both stores."""


# -- the engines ---------------------------------------------------------------------------------


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_answers(process: subprocess.Popen[bytes], port: int, timeout: float = 20) -> bool:
    """Whether the redis-server ``process`` answers PING on ``port`` before it exits."""
    import redis

    deadline = time.monotonic() + timeout
    with redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1) as client:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a throwaway redis-server on the loopback (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:  # a skip would keep CI green without the cluster path
        pytest.fail("redis-server not found on PATH: run `make system-deps`")
    directory = tmp_path_factory.mktemp("redis")
    log = directory / "redis.log"
    # Another process may take the probed port before redis binds it: try a few.
    for _attempt in range(3):
        port = _free_loopback_port()
        process = subprocess.Popen(
            [
                binary,
                *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)),
                *("--save", "", "--appendonly", "no", "--logfile", str(log)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if _redis_answers(process, port):
            break
        process.kill()
        process.wait()
    else:
        pytest.fail(f"redis-server did not start: {log.read_text()[-2000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _new_database(server_url: str) -> str:
    """A new, empty database on the PostgreSQL server at ``server_url`` (its URL)."""
    import psycopg
    from sqlalchemy.engine import make_url

    host = make_url(server_url).query["host"]
    name = f"cluster_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def bucket(s3_server: str) -> str:
    """A bucket of this module's own on the session's moto server."""
    import boto3

    name = f"cluster-{uuid.uuid4().hex[:16]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name


# -- the cluster Feast repo ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRepo:
    local: FlightWindowRun
    settings: Settings  # the local run's settings, with the cluster repo and S3 sources
    registry_url: str
    redis: str
    bucket: str
    endpoint: str
    applied: AppliedRepo
    materialized: Materialized
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def cluster_repo(
    tmp_path_factory: pytest.TempPathFactory,
    flight_window_run: FlightWindowRun,
    postgres_server: str,
    redis_server: str,
    s3_server: str,
    bucket: str,
) -> Iterator[ClusterRepo]:
    """The local run's feature sources in S3, applied and materialized with the cluster yaml.

    The cluster repo folder holds the definitions, the cluster yaml as its
    ``feature_store.yaml`` (what a cluster mounts) and the flights table (the entity rows
    training sets are asked for) but none of the feature views' Parquet files: those are
    only in the bucket.
    """
    local = flight_window_run
    repo = copy_feature_repo(tmp_path_factory.mktemp("cluster") / "feature_repo")
    shutil.copy(CLUSTER_YAML, repo / "feature_store.yaml")
    table = flights_table_path(local.settings)
    (repo / table.parent.name).mkdir()
    shutil.copy(table, repo / table.parent.name / table.name)

    sources = f"s3://{bucket}/features"
    store = open_store(ArtifactSettings(uri=sources, s3_endpoint_url=s3_server))
    for view in local.feature_views:
        store.put_file(f"{view}.parquet", local.settings.features.repo / source_file(view))

    features = local.settings.features.model_copy(update={"repo": repo, "source_uri": sources})
    settings = local.settings.model_copy(update={"features": features})
    registry_url = _new_database(postgres_server)
    task = load_task(settings)
    seconds: dict[str, float] = {}
    # What a cluster's pod environment carries; Feast fills the yaml's ${VAR}s from it. Kept
    # for the module: every FeatureStore opened on the cluster repo reads the yaml again.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("E2EAI_FEAST_REGISTRY_URL", registry_url)
        env.setenv("E2EAI_FEAST_REDIS", redis_server)
        env.setenv("AWS_ENDPOINT_URL", s3_server)
        started = time.perf_counter()
        applied = task.apply_features(settings)
        seconds["apply"] = time.perf_counter() - started
        started = time.perf_counter()
        materialized = task.materialize(settings)
        seconds["materialize"] = time.perf_counter() - started
        yield ClusterRepo(
            local=local,
            settings=settings,
            registry_url=registry_url,
            redis=redis_server,
            bucket=bucket,
            endpoint=s3_server,
            applied=applied,
            materialized=materialized,
            seconds=seconds,
        )


# -- Feast on Redis, S3 and PostgreSQL -----------------------------------------------------------


def test_the_cluster_yaml_names_the_engines_it_is_run_against(cluster_repo: ClusterRepo) -> None:
    """The yaml under test is the checkout's, and Feast resolved it to the real servers."""
    store = open_feature_store(cluster_repo.settings.features.repo)
    config = store.config
    assert config.registry.registry_type == "sql"
    assert config.registry.path == cluster_repo.registry_url
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == cluster_repo.redis
    assert config.offline_store.type == "e2eai.features.duckdb_s3.DuckDBS3OfflineStore"
    # Every source Feast reads is in the bucket; none is in the cluster repo's folder.
    for view in store.list_feature_views():
        path = view.batch_source.path
        assert path == f"s3://{cluster_repo.bucket}/features/{view.name}.parquet"
        assert not (cluster_repo.settings.features.repo / source_file(view.name)).exists()


def test_apply_writes_the_registry_to_postgres(cluster_repo: ClusterRepo) -> None:
    """Apply registered the local repo's views, and they are rows in PostgreSQL."""
    from sqlalchemy import create_engine, text

    assert cluster_repo.applied.feature_views == cluster_repo.local.feature_views
    engine = create_engine(cluster_repo.registry_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT feature_view_name FROM feature_views WHERE project_id = :p"),
                {"p": "e2eai_flights"},
            ).scalars()
            assert sorted(rows) == cluster_repo.local.feature_views
    finally:
        engine.dispose()


def test_materialize_fills_redis_with_the_local_stores_entities(cluster_repo: ClusterRepo) -> None:
    """Same window, same sources: Redis holds as many entities per view as local SQLite."""
    import redis

    counts = cluster_repo.materialized.online_entities
    assert counts == cluster_repo.local.online_entities
    assert set(counts) == set(cluster_repo.local.feature_views)
    assert all(n > 0 for n in counts.values())
    host, port = cluster_repo.redis.split(":")
    with redis.Redis(host=host, port=int(port)) as client:
        # One hash per entity key: origins, tail numbers, carriers and routes together.
        assert client.dbsize() >= max(counts.values())


def test_the_training_set_from_s3_equals_the_local_one(cluster_repo: ClusterRepo) -> None:
    """Point-in-time joins over S3 Parquet give exactly the local DuckDB store's rows."""
    start, end = FLIGHT_WINDOW
    task = load_task(cluster_repo.settings)
    started = time.perf_counter()
    cluster = task.training_set(cluster_repo.settings, start, end)
    seconds = time.perf_counter() - started
    local = cluster_repo.local.training
    assert len(cluster) == len(local) > 5000
    # A join that found nothing would be NaN in both: make sure features are really there.
    assert cluster["temp"].notna().mean() > 0.95
    pd.testing.assert_frame_equal(cluster, local)
    print(f"cluster timings: {cluster_repo.seconds}, training set {seconds:.1f} s")


def test_online_lookups_from_redis_equal_the_local_stores(cluster_repo: ClusterRepo) -> None:
    """The same flights' online features, from Redis and from the local SQLite store."""
    start, end = FLIGHT_WINDOW
    flights = entity_frame(cluster_repo.local.settings, start, end)
    sample = flights.sample(ONLINE_SAMPLE, random_state=13).reset_index(drop=True)
    requests = flights_as_requests(sample)
    local = online_feature_values(cluster_repo.local.settings, requests)
    cluster = online_feature_values(cluster_repo.settings, requests)
    assert cluster.keys() == local.keys()
    for name, values in local.items():
        assert len(cluster[name]) == ONLINE_SAMPLE
        assert cluster[name] == values, name
    found = sum(v is not None for values in cluster.values() for v in values)
    assert found > 0.9 * ONLINE_SAMPLE * len(cluster)


# -- the model registry and the app on PostgreSQL, artifacts in S3 ------------------------------


def test_a_model_version_on_postgres_keeps_its_artifacts_in_s3(
    cluster_repo: ClusterRepo, postgres_url: str, tmp_path: Path
) -> None:
    """Register a version (metadata in PostgreSQL, files in the bucket), fetch and verify it."""
    import boto3

    from e2eai.registry import ModelRegistry

    training = tmp_path / "training_set.parquet"
    cluster_repo.local.training.to_parquet(training, index=False)
    settings = Settings(
        registry=RegistrySettings(database_url=postgres_url),
        artifacts=ArtifactSettings(
            uri=f"s3://{cluster_repo.bucket}/artifacts", s3_endpoint_url=cluster_repo.endpoint
        ),
    )
    with ModelRegistry.from_settings(settings) as registry:
        assert registry.engine.dialect.name == "postgresql"
        version = registry.register(
            name="flight-delay",
            family="logreg",
            artifacts={"training_set.parquet": training},
            metrics={"rows": len(cluster_repo.local.training)},
            params={},
            lineage={
                "feature_service": FEATURE_SERVICE,
                "training_window": {"start": FLIGHT_WINDOW[0], "end": FLIGHT_WINDOW[1]},
                "task": "flights",
            },
        )
        key = f"artifacts/{version.artifacts['training_set.parquet'].key}"
        client = boto3.client("s3", endpoint_url=cluster_repo.endpoint, region_name="us-east-1")
        stored = client.get_object(Bucket=cluster_repo.bucket, Key=key)["Body"].read()
        assert stored == training.read_bytes()
        fetched = registry.fetch_artifact(version.version, "training_set.parquet", tmp_path / "f")
        assert fetched.read_bytes() == training.read_bytes()
        assert registry.verify(version.version).ok
        stored_lineage = registry.get(version.version).lineage
        assert stored_lineage.feature_service == FEATURE_SERVICE
        assert stored_lineage.training_window.end == FLIGHT_WINDOW[1]


def test_the_app_logs_a_prediction_with_cluster_features_on_postgres(
    cluster_repo: ClusterRepo, postgres_url: str
) -> None:
    """A prediction carrying features read from Redis, written to and read from PostgreSQL."""
    from e2eai.app.store import AppStore, PredictionRecord

    start, end = FLIGHT_WINDOW
    flight = entity_frame(cluster_repo.local.settings, start, end).iloc[[0]]
    requests = flights_as_requests(flight)
    online = online_feature_values(cluster_repo.settings, requests)
    features = {name: values[0] for name, values in online.items()}
    assert features["temp"] is not None
    record = PredictionRecord(
        id=uuid.uuid4().hex,
        request_id=uuid.uuid4().hex,
        created_at=datetime(2013, 1, 10, 12, tzinfo=UTC),
        task="flights",
        model_name="flight-delay",
        model_version="1",
        slot="stable",
        request={
            "origin": str(flight["origin"].iloc[0]),
            "tailnum": str(flight["tailnum"].iloc[0]),
        },
        probability=0.25,
        latency_ms=2.5,
        features=features,
    )
    with AppStore(postgres_url) as store:
        assert store.engine.dialect.name == "postgresql"
        store.migrate()
        assert store.add_predictions([record]) == 1
        view = store.get_prediction(record.id)
    assert view is not None
    assert view.record.features == pytest.approx(features)
    assert view.record.request == record.request
