"""The registry's schema comes from its Alembic migrations, on SQLite and PostgreSQL.

Opening a registry upgrades its database to the newest revision (a new database gets the whole
schema, an up-to-date one is left alone); a registry made before the migrations existed
(``create_all``, no version table) is stamped at 0001 with its rows kept; the ORM classes and
the migrations describe the same tables; the registry and the app can share one database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    ForeignKeyConstraint,
    MetaData,
    PrimaryKeyConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from e2eai.app.migrations import MIGRATIONS_DIR as APP_MIGRATIONS_DIR
from e2eai.app.store import AppStore
from e2eai.errors import RegistryError
from e2eai.registry import ModelRegistry, Stage
from e2eai.registry.database import create_registry_engine, migrate
from e2eai.registry.migrations import MIGRATIONS_DIR, VERSION_TABLE, alembic_config
from e2eai.registry.tables import (
    ArtifactRow,
    Base,
    ModelVersionRow,
    StageTransitionRow,
    VersionAllocation,
)
from e2eai.storage import LocalArtifactStore

REGISTRY_TABLES = {"version_allocations", "model_versions", "artifacts", "stage_transitions"}
HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry' / 'registry.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def plain_engine(database_url: str) -> Iterator[Engine]:
    """An engine on the database that does nothing to it by itself (no migration)."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _open(url: str, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(url, LocalArtifactStore(tmp_path / "store"))


def _versions(engine: Engine) -> list[tuple[str, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    return [tuple(row) for row in rows]


def _schema(connection: Connection, *, names: bool = True) -> dict[str, Any]:
    """Everything the inspector reports about the registry's tables (constraint names of
    primary and foreign keys left out unless ``names``)."""
    inspector = inspect(connection)

    def plain(value: Any) -> Any:  # reflected SQL (partial index WHERE) as its text
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value if value is None or isinstance(value, str | int | float) else str(value)

    def keyed(items: list[Any]) -> list[Any]:
        return sorted((plain(item) for item in items), key=repr)

    schema: dict[str, Any] = {}
    for table in sorted(REGISTRY_TABLES):
        pk = dict(inspector.get_pk_constraint(table))
        fks = [dict(fk) for fk in inspector.get_foreign_keys(table)]
        if not names:
            pk.pop("name", None)
            for fk in fks:
                fk.pop("name", None)
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement"))
                for c in inspector.get_columns(table)
            ],
            "pk": pk,
            "fks": keyed(fks),
            "unique": keyed(inspector.get_unique_constraints(table)),
            "indexes": keyed(inspector.get_indexes(table)),
            "checks": keyed(inspector.get_check_constraints(table)),
        }
    return schema


def _sqlite_ddl(connection: Connection) -> dict[str, str]:
    """SQLite's own record of the registry's tables and indexes: the exact CREATE statements."""
    rows = connection.execute(
        text("SELECT tbl_name, name, sql FROM sqlite_master WHERE sql IS NOT NULL")
    )
    return {name: sql for table, name, sql in rows if table in REGISTRY_TABLES}


def _create_all_as_before_migrations(engine: Engine) -> None:
    """The schema exactly as the registry made it before it had migrations: ``create_all`` of
    the same tables, with no naming convention (unnamed primary and foreign keys)."""
    legacy = MetaData()
    for table in Base.metadata.sorted_tables:
        copy = table.to_metadata(legacy)
        for constraint in copy.constraints:
            if isinstance(constraint, PrimaryKeyConstraint | ForeignKeyConstraint):
                constraint.name = None
    legacy.create_all(engine)


def _add_legacy_version(engine: Engine) -> None:
    """Version 1 (champion, one artifact, two transitions), written straight into the tables."""
    with Session(engine) as session, session.begin():
        session.add(VersionAllocation(name="flight-delay", allocated_at=T0))
        session.flush()
        session.add(
            ModelVersionRow(
                version=1,
                name="flight-delay",
                family="logreg",
                stage=Stage.CHAMPION.value,
                metrics={"auc": 0.8125},
                params={"C": 1.0},
                lineage={"code_version": "legacy-sha"},
                created_at=T0,
            )
        )
        session.flush()
        session.add(
            ArtifactRow(
                version=1,
                name="model.joblib",
                key="models/flight-delay/v1/model.joblib",
                sha256="0" * 64,
                size=3,
            )
        )
        for from_stage, to_stage in [(None, "candidate"), ("candidate", "champion")]:
            session.add(
                StageTransitionRow(
                    version=1, from_stage=from_stage, to_stage=to_stage, reason="old", at=T0
                )
            )


def _register(registry: ModelRegistry, tmp_path: Path) -> int:
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    return registry.register(
        name="flight-delay",
        family="logreg",
        artifacts={"model": artifact},
        metrics={"auc": 0.75},
        params={},
        lineage={},
    ).version


# -- a new database ----------------------------------------------------------------------------


def test_opening_an_empty_database_migrates_it_to_head(
    database_url: str, plain_engine: Engine, tmp_path: Path
) -> None:
    assert not inspect(plain_engine).get_table_names()
    with _open(database_url, tmp_path) as registry:
        assert set(inspect(registry.engine).get_table_names()) == REGISTRY_TABLES | {VERSION_TABLE}
        assert _versions(registry.engine) == [(HEAD,)]
        assert _register(registry, tmp_path) == 1
        assert registry.get(1).metrics == {"auc": 0.75}


def test_reopening_runs_no_ddl_and_keeps_the_rows(database_url: str, tmp_path: Path) -> None:
    with _open(database_url, tmp_path) as registry:
        _register(registry, tmp_path)
        with registry.engine.connect() as connection:
            before = _schema(connection)

    engine = create_registry_engine(database_url)  # the second opening
    try:
        statements: list[str] = []
        event.listen(
            engine,
            "before_cursor_execute",
            lambda _conn, _cursor, statement, *_rest: statements.append(statement),
        )
        migrate(engine)  # and a third
        assert any(VERSION_TABLE in s for s in statements)  # it did look
        changes = [
            s
            for s in statements
            if s.lstrip().split(None, 1)[0].upper()
            in {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE"}
        ]
        assert changes == []
        assert _versions(engine) == [(HEAD,)]
        with engine.connect() as connection:
            assert _schema(connection) == before
    finally:
        engine.dispose()
    with _open(database_url, tmp_path) as registry:
        assert [mv.version for mv in registry.list()] == [1]


# -- the ORM classes and the migrations --------------------------------------------------------


def test_orm_tables_match_the_migrations(database_url: str, tmp_path: Path) -> None:
    """`alembic check`: autogenerate finds nothing to add, drop or alter."""
    with _open(database_url, tmp_path) as registry, registry.engine.connect() as connection:
        command.check(alembic_config(connection))  # raises AutogenerateDiffsDetected


def test_the_migrations_make_exactly_what_create_all_makes(
    database_url: str, tmp_path: Path
) -> None:
    """What autogenerate does not compare too: partial index, CHECK text, constraint names,
    SQLite's AUTOINCREMENT, PostgreSQL's SERIAL sequences."""
    with _open(database_url, tmp_path) as registry:
        engine = registry.engine
        with engine.connect() as connection:
            migrated = _schema(connection)
            migrated_ddl = _sqlite_ddl(connection) if engine.dialect.name == "sqlite" else {}
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        assert not REGISTRY_TABLES & set(inspect(engine).get_table_names())

        Base.metadata.create_all(engine)
        with engine.connect() as connection:
            assert _schema(connection) == migrated
            if engine.dialect.name == "sqlite":
                assert _sqlite_ddl(connection) == migrated_ddl
                assert "AUTOINCREMENT" in migrated_ddl["version_allocations"]
    # Sanity of the comparison itself: the partial index is in what was compared.
    indexes = {ix["name"]: ix for ix in migrated["model_versions"]["indexes"]}
    assert indexes["uq_model_versions_one_champion"]["unique"]


def test_the_one_champion_index_made_by_the_migration_holds(
    database_url: str, tmp_path: Path
) -> None:
    with _open(database_url, tmp_path) as registry:
        first, second = _register(registry, tmp_path), _register(registry, tmp_path)
        with (
            pytest.raises(IntegrityError, match=r"(?i)unique"),
            registry.engine.begin() as connection,
        ):
            connection.execute(
                text("UPDATE model_versions SET stage = 'champion' WHERE version IN (:a, :b)"),
                {"a": first, "b": second},
            )


# -- a registry made before the migrations -----------------------------------------------------


def test_a_registry_made_before_migrations_is_stamped_and_keeps_its_rows(
    database_url: str, plain_engine: Engine, tmp_path: Path
) -> None:
    _create_all_as_before_migrations(plain_engine)
    _add_legacy_version(plain_engine)
    assert VERSION_TABLE not in inspect(plain_engine).get_table_names()

    with _open(database_url, tmp_path) as registry:
        assert _versions(registry.engine) == [("0001",)]
        old = registry.get(1)
        assert (old.stage, old.metrics, old.params) == (Stage.CHAMPION, {"auc": 0.8125}, {"C": 1.0})
        assert old.lineage.code_version == "legacy-sha"
        assert list(old.artifacts) == ["model.joblib"]
        assert [t.to_stage for t in old.transitions] == [Stage.CANDIDATE, Stage.CHAMPION]
        assert old.created_at == T0
        # The version sequence carries on where the old registry left it.
        assert _register(registry, tmp_path) == 2
        with registry.engine.connect() as connection:
            command.check(alembic_config(connection))
            stamped = _schema(connection, names=registry.engine.dialect.name == "postgresql")

    # Identical to a registry migrated from scratch; on PostgreSQL even the constraint names,
    # since the naming convention spells out PostgreSQL's defaults.
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}" if database_url.startswith("sqlite") else None
    if fresh_url is None:
        with plain_engine.begin() as connection:
            connection.execute(text("CREATE SCHEMA fresh"))
        fresh_url = (
            make_url(database_url)
            .update_query_dict({"options": "-c search_path=fresh"})
            .render_as_string(hide_password=False)
        )
    with _open(fresh_url, tmp_path / "fresh") as fresh, fresh.engine.connect() as connection:
        assert _schema(connection, names=fresh.engine.dialect.name == "postgresql") == stamped


_OPEN_WORKER = r"""
import json, sys, time
from pathlib import Path
from e2eai.registry import ModelRegistry
from e2eai.storage import LocalArtifactStore

url, store_root, go_file = sys.argv[1:4]
print("ready", flush=True)
while not Path(go_file).exists():
    time.sleep(0.002)
with ModelRegistry(url, LocalArtifactStore(Path(store_root))) as registry:
    print(json.dumps(registry.get(1).metrics), flush=True)
"""


def test_processes_opening_an_old_registry_at_once_stamp_it_once(
    database_url: str, plain_engine: Engine, tmp_path: Path
) -> None:
    _create_all_as_before_migrations(plain_engine)
    _add_legacy_version(plain_engine)
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_WORKER, database_url, str(tmp_path / "store"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    go.touch()
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert json.loads(stdout.strip().splitlines()[-1]) == {"auc": 0.8125}
    assert _versions(plain_engine) == [("0001",)]


def test_a_database_with_only_some_registry_tables_is_refused(
    database_url: str, plain_engine: Engine, tmp_path: Path
) -> None:
    with plain_engine.begin() as connection:
        connection.execute(text("CREATE TABLE artifacts (id INTEGER PRIMARY KEY)"))
    with pytest.raises(RegistryError, match="not made by the registry"):
        _open(database_url, tmp_path)
    # Nothing was created or stamped.
    assert set(inspect(plain_engine).get_table_names()) == {"artifacts"}


# -- sharing a database with the app -----------------------------------------------------------


def test_the_registry_and_the_app_share_one_database(database_url: str, tmp_path: Path) -> None:
    with AppStore(database_url) as store:
        store.migrate()
    with _open(database_url, tmp_path) as registry:
        engine = registry.engine
        tables = set(inspect(engine).get_table_names())
        assert tables >= REGISTRY_TABLES | {VERSION_TABLE, "alembic_version", "predictions"}
        assert _versions(engine) == [(HEAD,)]
        app_head = ScriptDirectory(str(APP_MIGRATIONS_DIR)).get_current_head()
        with engine.connect() as connection:
            app_version = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert app_version.all() == [(app_head,)]
            # The app's tables are not the registry's business: nothing to drop.
            command.check(alembic_config(connection))
        _register(registry, tmp_path)
    with AppStore(database_url) as store:
        store.migrate()  # the app's migrations do not mind the registry's tables either
        assert store.counts()["predictions"] == 0
