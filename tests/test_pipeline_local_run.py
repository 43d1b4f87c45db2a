"""The training pipeline run locally with kfp.local on a short window of the real 2013 flights.

Run 1 (gates pass) registers and canaries a model; run 2 with the same inputs but an
impossible gate is served by the step cache for data and features, registers nothing, deploys
nothing and says why. Both use tmp dirs for home, artifacts, registry and a copy of the repo.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from e2eai.cli import app
from e2eai.config import Settings
from e2eai.pipeline.loader import load_training_pipeline
from e2eai.pipeline.local_run import CACHED_STEPS, run_locally
from e2eai.registry import ModelRegistry

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WINDOW = {
    "data_start": "2013-01-01",
    "data_end": "2013-01-24",
    "train_start": "2013-01-01",
    "train_end": "2013-01-17",
    "family": "hist_gb",
    "hpo_trials": 0,
    "warm_start_version": 0,
    "canary_percent": 20,
}


def _overrides(home: Path, baseline_margin: float) -> dict[str, Any]:
    return {
        "home": str(home),
        "features": {"repo": str(home / "feature_repo")},
        "artifacts": {"uri": str(home / "artifacts")},
        "registry": {"database_url": f"sqlite:///{home / 'registry.db'}"},
        "training": {"workers": 1, "validation_days": 4, "holdout_days": 7},
        "gates": {"baseline_margin": baseline_margin},
    }


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("pipeline-home")
    repo = home / "feature_repo"
    repo.mkdir()
    for path in [*(ROOT / "feature_repo").glob("*.py"), ROOT / "feature_repo/feature_store.yaml",
                 ROOT / "feature_repo/.feastignore"]:  # fmt: skip
        shutil.copy(path, repo / path.name)
    return home


@pytest.fixture(scope="module")
def passing_run(home):
    # The flow is under test here, not model quality: a margin of -1 lets any model pass.
    overrides = json.dumps(_overrides(home, baseline_margin=-1.0))
    settings = Settings(**json.loads(overrides))
    return run_locally(load_training_pipeline(), {**WINDOW, "settings_json": overrides}, settings)


@pytest.fixture(scope="module")
def failing_run(home, passing_run):
    """Same inputs through the CLI, with a gate no model can pass (lead of 1.0 ROC-AUC)."""
    args = ["pipeline", "run", "--json", "--settings-json", json.dumps(_overrides(home, 1.0))]
    for name, value in WINDOW.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output[-3000:]
    return json.loads(result.stdout)


def test_a_passing_run_registers_and_canaries_the_model(home, passing_run):
    run = passing_run
    assert run.status == "succeeded", run.error
    assert run.gates_passed is True
    assert {g["name"] for g in run.gates} == {
        "beats_logistic_regression",
        "not_worse_than_champion",
    }
    assert isinstance(run.model_version, int)
    assert run.deployment["mode"] == "registry" and run.deployment["canary_percent"] == 20
    assert run.cache_hits == dict.fromkeys(CACHED_STEPS, False)

    settings = Settings(**_overrides(home, -1.0))
    with ModelRegistry.from_settings(settings) as registry:
        [version] = registry.list()
        assert version.version == run.model_version
        assert version.stage == "canary"
        assert version.family == "hist_gb"
        assert "model.onnx" in version.artifacts
        snapshot = run.tasks["prepare-data"].parameters["snapshot"]
        assert version.lineage.raw_snapshot == snapshot
        assert version.lineage.training_window.start.isoformat() == "2013-01-01"


def test_the_run_says_where_its_reports_are(passing_run):
    reports = passing_run.reports
    assert "<html" in Path(reports["data_quality"]).read_text().lower()
    assert "gates passed" in Path(reports["training_report"]).read_text()
    assert "Evaluation gates: PASSED" in Path(reports["training_gates"]).read_text()
    assert all(Path(p).is_relative_to(passing_run.run_dir) for p in reports.values())


def test_a_failing_gate_registers_nothing_deploys_nothing_and_says_why(home, failing_run):
    run = failing_run
    assert run["status"] == "succeeded"
    assert run["gates_passed"] is False
    assert run["model_version"] is None and run["deployment"] is None
    [reason] = run["not_registered_because"]
    assert reason.startswith("beats_logistic_regression:") and "required 1.0000" in reason
    assert "Not registered" in Path(run["reports"]["gate_failure"]).read_text()
    tasks = {p.name for p in Path(run["run_dir"]).iterdir() if p.is_dir()}
    assert not {"export-onnx", "register-model", "deploy-canary"} & tasks

    settings = Settings(**_overrides(home, 1.0))
    with ModelRegistry.from_settings(settings) as registry:
        assert len(registry.list()) == 1  # only the passing run's version
        assert registry.list()[0].stage == "canary"


def test_the_rerun_takes_data_and_features_from_the_step_cache(passing_run, failing_run):
    assert failing_run["cache_hits"] == dict.fromkeys(CACHED_STEPS, True)
    first = sum(passing_run.tasks[name].seconds for name in CACHED_STEPS)
    again = sum(failing_run["task_seconds"][name] for name in CACHED_STEPS)
    assert again < first / 3, (first, again)
    # Reused, not recomputed: the cached training set is the one the first run trained on.
    assert (
        passing_run.tasks["retrieve-training-set"].artifacts["training_frame"]["metadata"]["rows"]
        == json.loads(
            (
                Path(failing_run["run_dir"]) / "retrieve-training-set" / "executor_output.json"
            ).read_text()
        )["parameterValues"]["rows"]
    )
