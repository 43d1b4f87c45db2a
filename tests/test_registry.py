"""ModelRegistry on a real SQLite database and a local artifact store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from e2eai.config import ArtifactSettings, RegistrySettings, Settings
from e2eai.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    InvalidRegistrationError,
    InvalidStageTransitionError,
    ModelVersionNotFoundError,
    UnknownStageError,
)
from e2eai.registry import ALLOWED_TRANSITIONS, ModelRegistry, Stage, code_version
from e2eai.storage import LocalArtifactStore, sha256_file

SNAPSHOT = "ab" * 32


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path):
    """A registry on SQLite (the default) and on PostgreSQL: the same code must work on both."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'registry.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with ModelRegistry(url, LocalArtifactStore(tmp_path / "store")) as opened:
        yield opened


@pytest.fixture
def model_file(tmp_path: Path):
    """Factory: a small file with given content, standing in for a trained model."""
    counter = iter(range(1_000_000))

    def make(content: bytes = b"weights", name: str = "model.bin") -> Path:
        folder = tmp_path / "files" / str(next(counter))
        folder.mkdir(parents=True)
        path = folder / name
        path.write_bytes(content)
        return path

    return make


def register(registry: ModelRegistry, model_file, **overrides):
    arguments = dict(
        name="flight-delay",
        family="hist_gb",
        artifacts={"model": model_file()},
        metrics={"roc_auc": 0.71, "slices": {"carrier": {"AA": {"roc_auc": 0.69}}}},
        params={"learning_rate": 0.1, "max_iter": 200},
        lineage={
            "raw_snapshot": SNAPSHOT,
            "feature_service": "flight_delay_v1",
            "training_window": {"start": "2013-01-01", "end": "2013-04-30"},
        },
    )
    arguments.update(overrides)
    return registry.register(**arguments)


def test_register_records_everything_and_get_reads_it_back(
    registry: ModelRegistry, model_file, tmp_path: Path
) -> None:
    path = model_file(b"the weights")
    before = datetime.now(UTC)
    mv = register(registry, model_file, artifacts={"model": path})

    assert mv.version == 1
    assert mv.stage is Stage.CANDIDATE
    assert mv.metrics["slices"]["carrier"]["AA"]["roc_auc"] == 0.69
    assert mv.params == {"learning_rate": 0.1, "max_iter": 200}
    assert mv.lineage.raw_snapshot == SNAPSHOT
    assert mv.lineage.training_window is not None
    assert mv.lineage.training_window.start == date(2013, 1, 1)
    assert mv.lineage.code_version == code_version()
    assert mv.lineage["feature_service"] == "flight_delay_v1"  # dict-style, as in the contract
    record = mv.artifacts["model"]
    assert record.key == "models/flight-delay/v1/model.bin"
    assert record["sha256"] == sha256_file(path)
    assert record.size == len(b"the weights")
    assert (tmp_path / "store" / record.key).read_bytes() == b"the weights"
    assert before <= mv.created_at <= datetime.now(UTC)
    assert [(t.from_stage, t.to_stage) for t in mv.transitions] == [(None, Stage.CANDIDATE)]

    again = registry.get(1)
    assert again == mv
    assert again.created_at.tzinfo is not None


def test_metadata_is_in_the_database_tables(registry: ModelRegistry, model_file) -> None:
    register(registry, model_file)
    tables = set(inspect(registry.engine).get_table_names())
    assert {"model_versions", "artifacts", "stage_transitions"} <= tables
    with registry.engine.connect() as connection:
        if registry.engine.dialect.name == "sqlite":
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        rows = connection.execute(text("SELECT name, key, size FROM artifacts")).all()
    assert rows == [("model", "models/flight-delay/v1/model.bin", len(b"weights"))]


def test_registry_persists_across_instances(tmp_path: Path, model_file) -> None:
    settings = Settings(
        registry=RegistrySettings(database_url=f"sqlite:///{tmp_path / 'r' / 'reg.db'}"),
        artifacts=ArtifactSettings(uri=str(tmp_path / "arts")),
    )
    with ModelRegistry.from_settings(settings) as first:
        created = register(first, model_file)
    with ModelRegistry.from_settings(settings) as second:
        assert second.get(created.version) == created
        assert second.fetch_artifact(created.version, "model", tmp_path / "o").read_bytes() == (
            b"weights"
        )


def test_versions_increase_and_list_filters_by_name(registry: ModelRegistry, model_file) -> None:
    a1 = register(registry, model_file)
    b1 = register(registry, model_file, name="other-model")
    a2 = register(registry, model_file)
    assert a1.version < b1.version < a2.version
    assert [v.version for v in registry.list()] == [a1.version, b1.version, a2.version]
    assert [v.version for v in registry.list("flight-delay")] == [a1.version, a2.version]
    assert registry.list("nobody") == []


def test_metric_values_from_numpy_are_stored_as_plain_numbers(
    registry: ModelRegistry, model_file
) -> None:
    mv = register(
        registry,
        model_file,
        metrics={"roc_auc": np.float32(0.75), "n": np.int64(12), "curve": [np.float64(0.1)]},
        params={"train_end": date(2013, 4, 30), "hidden": (128, 64)},
    )
    stored = registry.get(mv.version)
    assert stored.metrics == {"roc_auc": pytest.approx(0.75), "n": 12, "curve": [0.1]}
    assert type(stored.metrics["n"]) is int
    assert stored.params == {"train_end": "2013-04-30", "hidden": [128, 64]}


# -- stages ------------------------------------------------------------------------------------


def test_candidate_to_canary_to_champion_records_each_move(
    registry: ModelRegistry, model_file
) -> None:
    mv = register(registry, model_file)
    registry.transition(mv.version, "canary", reason="passed gates")
    champion = registry.transition(mv.version, Stage.CHAMPION, reason="canary healthy")
    assert champion.stage is Stage.CHAMPION
    assert registry.champion("flight-delay") == champion
    moves = [(t.from_stage, t.to_stage, t.reason) for t in champion.transitions]
    assert moves == [
        (None, Stage.CANDIDATE, "registered as candidate"),
        (Stage.CANDIDATE, Stage.CANARY, "passed gates"),
        (Stage.CANARY, Stage.CHAMPION, "canary healthy"),
    ]
    times = [t.at for t in champion.transitions]
    assert times == sorted(times)


def test_new_champion_archives_the_previous_one_with_a_reason(
    registry: ModelRegistry, model_file
) -> None:
    old = register(registry, model_file)
    registry.transition(old.version, "champion", reason="first model")
    other_name = register(registry, model_file, name="other-model", stage="champion")
    new = register(registry, model_file)
    registry.transition(new.version, "champion", reason="beats champion on holdout")

    archived = registry.get(old.version)
    assert archived.stage is Stage.ARCHIVED
    last = archived.transitions[-1]
    assert (last.from_stage, last.to_stage) == (Stage.CHAMPION, Stage.ARCHIVED)
    assert f"v{new.version}" in last.reason and "beats champion on holdout" in last.reason
    assert registry.champion("flight-delay").version == new.version
    # Champions of other model names are untouched.
    assert registry.get(other_name.version).stage is Stage.CHAMPION


def test_registering_as_champion_archives_the_current_champion(
    registry: ModelRegistry, model_file
) -> None:
    first = register(registry, model_file, stage="champion")
    second = register(registry, model_file, stage="champion")
    assert registry.get(first.version).stage is Stage.ARCHIVED
    assert registry.champion("flight-delay").version == second.version


def test_rollback_restores_an_archived_champion(registry: ModelRegistry, model_file) -> None:
    first = register(registry, model_file, stage="champion")
    second = register(registry, model_file, stage="champion")
    registry.transition(first.version, "champion", reason="rollback: v2 latency regression")
    assert registry.champion("flight-delay").version == first.version
    assert registry.get(second.version).stage is Stage.ARCHIVED


def test_champion_is_none_without_one(registry: ModelRegistry, model_file) -> None:
    register(registry, model_file)
    assert registry.champion("flight-delay") is None


INVALID_MOVES = [
    (current, target)
    for current in Stage
    for target in Stage
    if target not in ALLOWED_TRANSITIONS[current]
]


def _bring_to(registry: ModelRegistry, version: int, stage: Stage) -> None:
    path = {
        Stage.CANDIDATE: [],
        Stage.CANARY: [Stage.CANARY],
        Stage.CHAMPION: [Stage.CHAMPION],
        Stage.ARCHIVED: [Stage.ARCHIVED],
        Stage.REJECTED: [Stage.REJECTED],
    }[stage]
    for step in path:
        registry.transition(version, step, reason="setup")


@pytest.mark.parametrize(("current", "target"), INVALID_MOVES, ids=lambda s: s.value)
def test_invalid_transitions_raise_and_change_nothing(
    registry: ModelRegistry, model_file, current: Stage, target: Stage
) -> None:
    mv = register(registry, model_file)
    _bring_to(registry, mv.version, current)
    before = registry.get(mv.version)
    with pytest.raises(InvalidStageTransitionError) as info:
        registry.transition(mv.version, target, reason="try it")
    assert current.value in str(info.value)
    assert registry.get(mv.version) == before


def test_invalid_moves_include_the_obvious_ones() -> None:
    assert (Stage.REJECTED, Stage.CHAMPION) in INVALID_MOVES
    assert (Stage.CHAMPION, Stage.CANARY) in INVALID_MOVES
    assert (Stage.ARCHIVED, Stage.CANARY) in INVALID_MOVES
    assert (Stage.CANDIDATE, Stage.CANDIDATE) in INVALID_MOVES


def test_transition_needs_a_known_stage_a_reason_and_an_existing_version(
    registry: ModelRegistry, model_file
) -> None:
    mv = register(registry, model_file)
    with pytest.raises(UnknownStageError, match="production"):
        registry.transition(mv.version, "production", reason="x")
    with pytest.raises(InvalidStageTransitionError, match="reason"):
        registry.transition(mv.version, "canary", reason="  ")
    with pytest.raises(ModelVersionNotFoundError, match="99"):
        registry.transition(99, "canary", reason="x")
    with pytest.raises(ModelVersionNotFoundError, match="99"):
        registry.get(99)


def test_cannot_register_straight_into_archived(registry: ModelRegistry, model_file) -> None:
    with pytest.raises(InvalidStageTransitionError, match="archived"):
        register(registry, model_file, stage="archived")
    assert registry.list() == []


def test_one_champion_per_name_is_enforced_by_the_database(
    registry: ModelRegistry, model_file
) -> None:
    a = register(registry, model_file, stage="champion")
    b = register(registry, model_file)
    with (
        pytest.raises(IntegrityError, match=r"UNIQUE constraint|uq_model_versions_one_champ"),
        registry.engine.begin() as connection,
    ):
        connection.execute(
            text("UPDATE model_versions SET stage = 'champion' WHERE version = :v"),
            {"v": b.version},
        )
    assert registry.get(a.version).stage is Stage.CHAMPION


# -- registration input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Flight Delay"}, "model name"),
        ({"name": "../escape"}, "model name"),
        ({"family": ""}, "model family"),
        ({"metrics": {"roc_auc": float("nan")}}, r"metrics\['roc_auc'\] is nan"),
        ({"metrics": {"per_slice": {"HA": float("inf")}}}, r"metrics\['per_slice'\]\['HA'\]"),
        ({"params": {"fn": print}}, r"params\['fn'\] is a builtin_function_or_method"),
        ({"lineage": {"raw_snapshot": "not-a-sha"}}, "raw_snapshot"),
        ({"lineage": {"parent_verison": 1}}, "parent_verison"),
        (
            {"lineage": {"training_window": {"start": "2013-05-01", "end": "2013-04-01"}}},
            "before start",
        ),
        ({"lineage": {"parent_version": 42}}, "parent_version 42 is not in the registry"),
        ({"artifacts": {"model": Path("/nonexistent/model.bin")}}, "does not exist"),
        ({"artifacts": {"../model": Path(__file__)}}, "artifact name"),
    ],
)
def test_bad_registrations_are_refused_before_a_version_is_taken(
    registry: ModelRegistry, model_file, overrides: dict, message: str
) -> None:
    with pytest.raises(InvalidRegistrationError, match=message):
        register(registry, model_file, **overrides)
    assert register(registry, model_file).version == 1  # no number was burnt


def test_directory_artifact_is_refused(registry: ModelRegistry, model_file, tmp_path: Path) -> None:
    with pytest.raises(InvalidRegistrationError, match="is a directory"):
        register(registry, model_file, artifacts={"logs": tmp_path})


def test_two_artifacts_with_the_same_file_name_are_refused(
    registry: ModelRegistry, model_file
) -> None:
    with pytest.raises(InvalidRegistrationError, match=r"file name 'model\.bin'"):
        register(registry, model_file, artifacts={"a": model_file(), "b": model_file()})


def test_parent_version_links_a_warm_start(registry: ModelRegistry, model_file) -> None:
    parent = register(registry, model_file)
    child = register(registry, model_file, lineage={"parent_version": parent.version})
    assert child.lineage.parent_version == parent.version


# -- artifacts ---------------------------------------------------------------------------------


def test_add_artifacts_after_export_and_fetch_them(
    registry: ModelRegistry, model_file, tmp_path: Path
) -> None:
    mv = register(registry, model_file)
    onnx = model_file(b"onnx graph", name="model.onnx")
    updated = registry.add_artifacts(mv.version, {"model.onnx": onnx})
    assert set(updated.artifacts) == {"model", "model.onnx"}
    assert updated.artifacts["model.onnx"].sha256 == sha256_file(onnx)
    fetched = registry.fetch_artifact(mv.version, "model.onnx", tmp_path / "serve")
    assert fetched == tmp_path / "serve" / "model.onnx"
    assert fetched.read_bytes() == b"onnx graph"
    assert registry.get(mv.version) == updated


def test_artifacts_are_immutable(registry: ModelRegistry, model_file) -> None:
    mv = register(registry, model_file)
    with pytest.raises(InvalidRegistrationError, match="already exists"):
        registry.add_artifacts(mv.version, {"model": model_file(b"new")})
    with pytest.raises(InvalidRegistrationError, match="already used"):
        registry.add_artifacts(mv.version, {"other": model_file(b"new")})  # same file name
    assert registry.verify(mv.version).ok


def test_fetch_unknown_artifact_lists_the_ones_there_are(
    registry: ModelRegistry, model_file, tmp_path: Path
) -> None:
    mv = register(registry, model_file)
    with pytest.raises(ArtifactNotFoundError, match=r"'model\.onnx'.*its artifacts: model"):
        registry.fetch_artifact(mv.version, "model.onnx", tmp_path)


def test_tampered_local_artifact_is_refused_on_fetch(
    registry: ModelRegistry, model_file, tmp_path: Path
) -> None:
    mv = register(registry, model_file, artifacts={"model": model_file(b"good weights")})
    stored = tmp_path / "store" / mv.artifacts["model"].key
    stored.write_bytes(b"evil weights")

    out = tmp_path / "out"
    with pytest.raises(ArtifactIntegrityError) as info:
        registry.fetch_artifact(mv.version, "model", out)
    message = str(info.value)
    assert "flight-delay v1 'model'" in message
    assert mv.artifacts["model"].sha256 in message
    assert sha256_file(stored) in message
    assert not (out / "model.bin").exists()

    report = registry.verify(mv.version)
    assert not report.ok
    (check,) = report.artifacts
    assert (check.status, check.actual_sha256) == ("modified", sha256_file(stored))


def test_verify_reports_missing_artifacts(
    registry: ModelRegistry, model_file, tmp_path: Path
) -> None:
    mv = register(registry, model_file)
    assert registry.verify(mv.version).ok
    (tmp_path / "store" / mv.artifacts["model"].key).unlink()
    report = registry.verify(mv.version)
    assert not report.ok
    assert report.artifacts[0].status == "missing"
