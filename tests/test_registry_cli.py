"""``e2eai registry ...`` through typer's CliRunner, against a real registry on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from e2eai.cli.registry import app
from e2eai.config import get_settings
from e2eai.registry import ModelRegistry

runner = CliRunner()


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("E2EAI_REGISTRY__DATABASE_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("E2EAI_ARTIFACTS__URI", str(tmp_path / "artifacts"))
    get_settings.cache_clear()  # the CLI reads settings from the environment set above
    with ModelRegistry.from_settings(get_settings()) as opened:
        yield opened
    get_settings.cache_clear()


def _register(registry: ModelRegistry, tmp_path: Path, auc: float, **overrides):
    path = tmp_path / f"model-{auc}.bin"
    path.write_bytes(str(auc).encode())
    arguments = {
        "name": "flight-delay",
        "family": "hist_gb",
        "artifacts": {"model": path},
        "metrics": {"roc_auc": auc},
        "params": {"max_iter": 100},
        "lineage": {
            "raw_snapshot": "cd" * 32,
            "training_window": {"start": "2013-01-01", "end": "2013-03-31"},
        },
    }
    return registry.register(**(arguments | overrides))


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_json_gives_versions_with_stage_metrics_and_lineage(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    v1 = _register(registry, tmp_path, 0.70)
    v2 = _register(
        registry, tmp_path, 0.72, lineage={"raw_snapshot": "cd" * 32, "parent_version": 1}
    )
    registry.transition(v1.version, "champion", reason="first")

    listing = _json(runner.invoke(app, ["list", "--json"]))
    assert listing["count"] == 2
    first, second = listing["versions"]
    assert (first["version"], first["stage"], first["metrics"]["roc_auc"]) == (1, "champion", 0.7)
    assert first["lineage"]["raw_snapshot"] == "cd" * 32
    assert first["lineage"]["training_window"] == {"start": "2013-01-01", "end": "2013-03-31"}
    assert second["lineage"]["parent_version"] == v1.version
    assert second["version"] == v2.version
    assert second["artifacts"]["model"]["sha256"] == v2.artifacts["model"].sha256

    champions = _json(runner.invoke(app, ["list", "--stage", "champion", "--json"]))
    assert [v["version"] for v in champions["versions"]] == [1]


def test_show_transition_and_promote(registry: ModelRegistry, tmp_path: Path) -> None:
    v1 = _register(registry, tmp_path, 0.70, stage="champion")
    v2 = _register(registry, tmp_path, 0.75)

    shown = _json(runner.invoke(app, ["show", str(v2.version), "--json"]))
    assert shown["stage"] == "candidate" and shown["params"] == {"max_iter": 100}

    moved = _json(
        runner.invoke(app, ["transition", str(v2.version), "canary", "--reason", "gates", "--json"])
    )
    assert (moved["previous_stage"], moved["stage"]) == ("candidate", "canary")
    assert moved["transitions"][-1]["reason"] == "gates"

    promoted = _json(runner.invoke(app, ["promote", str(v2.version), "--json"]))
    assert promoted["stage"] == "champion"
    assert promoted["archived"] == v1.version
    assert registry.get(v1.version).stage == "archived"


def test_invalid_transition_is_a_clear_error_with_exit_code_2(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    v1 = _register(registry, tmp_path, 0.70)
    registry.transition(v1.version, "rejected", reason="failed gates")
    result = runner.invoke(app, ["transition", str(v1.version), "champion", "--reason", "x"])
    assert result.exit_code == 2
    assert "cannot move from rejected to champion" in result.output
    missing = runner.invoke(app, ["show", "42"])
    assert missing.exit_code == 2
    assert "no model version 42" in missing.output


def test_verify_exits_1_and_names_the_modified_artifact(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    v1 = _register(registry, tmp_path, 0.70)
    v2 = _register(registry, tmp_path, 0.71)
    assert _json(runner.invoke(app, ["verify", "--json"]))["ok"] is True

    (tmp_path / "artifacts" / v2.artifacts["model"].key).write_bytes(b"tampered")
    result = runner.invoke(app, ["verify", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    by_version = {r["version"]: r for r in report["versions"]}
    assert by_version[v1.version]["ok"] is True
    (check,) = by_version[v2.version]["artifacts"]
    assert (check["name"], check["status"]) == ("model", "modified")
    assert check["expected_sha256"] == v2.artifacts["model"].sha256

    only_v1 = runner.invoke(app, ["verify", str(v1.version), "--json"])
    assert only_v1.exit_code == 0
