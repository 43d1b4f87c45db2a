"""Components called directly (``component.python_func``) with real KFP artifact objects.

A small synthetic frame, hist_gb (seconds to train), a real SQLite registry and artifact
directory in tmp: train → evaluate → export → register → deploy, and the gate-failure branch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model
from synthetic import synthetic_frame

from e2eai.errors import PipelineError, TrainingConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components import (
    configure_run,
    deploy_canary,
    evaluate_model,
    export_onnx,
    register_model,
    report_gate_failure,
    train_model,
    tune_hyperparameters,
)


def _settings_json(home: Path, **gates: float) -> str:
    return json.dumps(
        {
            "home": str(home),
            "artifacts": {"uri": str(home / "artifacts")},
            "registry": {"database_url": f"sqlite:///{home / 'registry.db'}"},
            "training": {
                "family": "hist_gb",
                "train_start": "2013-01-01",
                "train_end": "2013-02-28",
                "validation_days": 10,
                "holdout_days": 14,
                "workers": 1,
            },
            "gates": gates,
        }
    )


def _artifact(cls, tmp: Path, name: str):
    return cls(name=name, uri=str(tmp / "outputs" / name), metadata={})


@pytest.fixture(scope="module")
def frame_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("frame") / "frame.parquet"
    synthetic_frame(4000, days=75, seed=3).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, frame_path):
    """One trained hist_gb run (as the train component writes it) shared by the tests."""
    home = tmp_path_factory.mktemp("home")
    settings_json = _settings_json(home, baseline_margin=-1.0)
    model = _artifact(Model, home, "model")
    frame = Dataset(name="training_frame", uri=str(frame_path))
    train_model.python_func(
        settings_json=settings_json,
        training_frame=frame,
        best_params_json="{}",
        warm_start_version=0,
        model=model,
    )
    return home, settings_json, model


def test_configure_rejects_a_training_window_outside_the_data_window():
    with pytest.raises(PipelineError, match="must lie inside the data window"):
        configure_run.python_func(
            settings_json="{}",
            data_start="2013-01-01",
            data_end="2013-01-31",
            train_start="2013-01-01",
            train_end="2013-01-31",
            family="",
            hpo_trials=0,
        )


def test_configure_applies_parameters_over_the_json_overrides():
    resolved = json.loads(
        configure_run.python_func(
            settings_json='{"training": {"family": "torch_mlp", "epochs": 3}}',
            data_start="2013-01-01",
            data_end="2013-03-31",
            train_start="2013-01-01",
            train_end="2013-02-28",
            family="hist_gb",
            hpo_trials=0,
        )
    )
    assert resolved["training"]["family"] == "hist_gb"  # the parameter wins
    assert resolved["training"]["epochs"] == 3  # the override stays
    assert resolved["data"]["end"] == "2013-03-31"


def test_configure_names_a_bad_settings_field():
    with pytest.raises(PipelineError, match=r"training\.epochz"):
        configure_run.python_func(
            settings_json='{"training": {"epochz": 3}}',
            data_start="",
            data_end="",
            train_start="",
            train_end="",
            family="",
            hpo_trials=-1,
        )


def test_hpo_with_no_budget_is_skipped_and_returns_no_params(tmp_path, frame_path):
    best, metrics = _artifact(Artifact, tmp_path, "best"), _artifact(Metrics, tmp_path, "m")
    (tmp_path / "outputs").mkdir()
    chosen = tune_hyperparameters.python_func(
        settings_json=_settings_json(tmp_path),
        training_frame=Dataset(name="f", uri=str(frame_path)),
        best_params=best,
        metrics=metrics,
    )
    assert chosen == "{}"
    assert json.loads(Path(best.path).read_text()) == {}
    assert metrics.metadata["hpo_trials"] == 0


def test_hpo_refuses_a_family_without_a_search_space(tmp_path, frame_path):
    settings = json.loads(_settings_json(tmp_path))
    settings["training"]["hpo_trials"] = 2
    with pytest.raises(TrainingConfigError, match="torch_mlp"):
        tune_hyperparameters.python_func(
            settings_json=json.dumps(settings),
            training_frame=Dataset(name="f", uri=str(frame_path)),
            best_params=_artifact(Artifact, tmp_path, "best"),
            metrics=_artifact(Metrics, tmp_path, "m"),
        )


def test_train_writes_a_self_describing_model_directory(trained):
    _, _, model = trained
    record = json.loads((Path(model.path) / "training_result.json").read_text())
    assert record["family"] == "hist_gb"
    assert (Path(model.path) / record["model_dir"] / "model_info.json").is_file()
    assert (Path(model.path) / record["holdout_path"]).is_file()
    assert model.metadata["family"] == "hist_gb"
    assert model.metadata["gates_passed"] is True
    assert 0.5 < model.metadata["roc_auc"] <= 1.0


def _evaluate(settings_json: str, model, out: Path):
    outputs = {
        "metrics": _artifact(Metrics, out, "metrics"),
        "roc": _artifact(ClassificationMetrics, out, "roc"),
        "report": _artifact(HTML, out, "report"),
        "gates": _artifact(Markdown, out, "gates"),
    }
    (out / "outputs").mkdir(parents=True, exist_ok=True)
    passed = evaluate_model.python_func(settings_json=settings_json, model=model, **outputs)
    return passed, outputs


def test_evaluate_publishes_metrics_roc_report_and_a_passing_verdict(trained, tmp_path):
    _, settings_json, model = trained
    passed, out = _evaluate(settings_json, model, tmp_path)
    assert passed is True
    logged = out["metrics"].metadata
    assert logged["gates_passed"] == 1.0
    assert logged["gate_beats_logistic_regression"] == 1.0
    assert logged["model_roc_auc"] == pytest.approx(model.metadata["roc_auc"])
    roc = out["roc"].metadata["confidenceMetrics"]
    assert len(roc) >= 10
    assert all(0.0 <= p["falsePositiveRate"] <= 1.0 for p in roc)
    matrix = out["roc"].metadata["confusionMatrix"]["rows"]
    holdout_rows = json.loads((Path(model.path) / "training_result.json").read_text())["metrics"][
        "model"
    ]["rows"]
    assert sum(sum(r["row"]) for r in matrix) == holdout_rows
    html = Path(out["report"].path).read_text()
    assert "beats_logistic_regression" in html and "data:image/png;base64," in html
    assert "Evaluation gates: PASSED" in Path(out["gates"].path).read_text()


def test_failing_gate_is_reported_with_its_reason(tmp_path, frame_path):
    settings_json = _settings_json(tmp_path, baseline_margin=1.0)  # no model leads by 1.0 AUC
    model = _artifact(Model, tmp_path, "model")
    train_model.python_func(
        settings_json=settings_json,
        training_frame=Dataset(name="f", uri=str(frame_path)),
        best_params_json="{}",
        warm_start_version=0,
        model=model,
    )
    passed, out = _evaluate(settings_json, model, tmp_path)
    assert passed is False
    assert out["metrics"].metadata["gate_beats_logistic_regression"] == 0.0
    assert "Evaluation gates: FAILED" in Path(out["gates"].path).read_text()
    [reason] = out["gates"].metadata["failed"]
    assert reason.startswith("beats_logistic_regression:") and "1.0000" in reason

    decision = _artifact(Markdown, tmp_path, "decision")
    reasons = report_gate_failure.python_func(gates=out["gates"], decision=decision)
    assert reasons == reason
    text = Path(decision.path).read_text()
    assert "Not registered, not deployed" in text and reason in text


def test_export_register_and_deploy_a_candidate(trained, tmp_path):
    from e2eai.config import Settings
    from e2eai.registry import ModelRegistry

    _, settings_json, model = trained
    (tmp_path / "outputs").mkdir()
    onnx = _artifact(Model, tmp_path, "onnx")
    metrics = _artifact(Metrics, tmp_path, "export-metrics")
    export_onnx.python_func(
        settings_json=settings_json, model=model, onnx_model=onnx, metrics=metrics
    )
    assert (Path(onnx.path) / "model.onnx").is_file()
    assert metrics.metadata["parity_max_abs_diff"] <= 1e-4

    registration = _artifact(Artifact, tmp_path, "registration")
    version = register_model.python_func(
        settings_json=settings_json, model=model, onnx_model=onnx, registration=registration
    )
    deployment = _artifact(Markdown, tmp_path, "deployment")
    mode = deploy_canary.python_func(
        settings_json=settings_json, model_version=version, canary_percent=25, deployment=deployment
    )
    # Nothing is served from this home: the registry records the canary request.
    assert mode == "registry"
    assert deployment.metadata == {
        "version": version,
        "canary_percent": 25,
        "mode": "registry",
        "stage": "canary",
    }
    settings = Settings(**json.loads(settings_json))
    with ModelRegistry.from_settings(settings) as registry:
        record = registry.get(version)
        assert record.stage == "canary"
        assert "25% canary" in record.transitions[-1].reason
        assert {"model.onnx", "holdout.parquet", "gates.json"} <= set(record.artifacts)
        assert record.metrics["gates"]["beats_logistic_regression"]["passed"] is True
        fetched = registry.fetch_artifact(version, "model.onnx", tmp_path / "fetched")
    assert fetched.read_bytes() == (Path(onnx.path) / "model.onnx").read_bytes()


def test_deploy_refuses_a_canary_share_outside_1_to_100(trained, tmp_path):
    _, settings_json, _ = trained
    with pytest.raises(PipelineError, match="canary_percent"):
        deploy_canary.python_func(
            settings_json=settings_json,
            model_version=1,
            canary_percent=0,
            deployment=_artifact(Markdown, tmp_path, "d"),
        )


def test_training_frame_reaches_the_model_unchanged(trained, frame_path):
    _, _, model = trained
    record = json.loads((Path(model.path) / "training_result.json").read_text())
    holdout = pd.read_parquet(Path(model.path) / record["holdout_path"])
    frame = pd.read_parquet(frame_path)
    assert set(holdout["flight_id"]) <= set(frame["flight_id"])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_deploy_starts_the_canary_behind_running_local_serving(trained, tmp_path):
    """With `e2eai serve` running, the deploy step puts the version behind the router."""
    from onnx_fixtures import build_onnx_model

    from e2eai.config import Settings
    from e2eai.registry import ModelRegistry
    from e2eai.serving.local import LocalServing
    from e2eai.serving.processes import free_port
    from e2eai.serving.rollout import ModelSource

    _, settings_json, model = trained
    overrides = json.loads(settings_json)
    overrides["home"] = str(tmp_path / "serving-home")  # its own serving state
    overrides["serving"] = {"port": free_port()}
    settings_json = json.dumps(overrides)
    (tmp_path / "outputs").mkdir()
    onnx = _artifact(Model, tmp_path, "onnx")
    metrics = _artifact(Metrics, tmp_path, "m")
    export_onnx.python_func(
        settings_json=settings_json, model=model, onnx_model=onnx, metrics=metrics
    )
    version = register_model.python_func(
        settings_json=settings_json,
        model=model,
        onnx_model=onnx,
        registration=_artifact(Artifact, tmp_path, "registration"),
    )
    settings = Settings(**overrides)
    manager = LocalServing(settings)
    manager.start(ModelSource.from_path(build_onnx_model(tmp_path / "stable.onnx"), "stable"))
    try:
        deployment = _artifact(Markdown, tmp_path, "deployment")
        mode = deploy_canary.python_func(
            settings_json=settings_json,
            model_version=version,
            canary_percent=30,
            deployment=deployment,
        )
        state = manager.state()
    finally:
        manager.stop()
    assert mode == "local-serving"
    assert state.canary is not None and state.canary.registry_version == version
    assert (state.canary.weight, state.stable.weight) == (30, 70)
    with ModelRegistry.from_settings(settings) as registry:
        assert registry.get(version).stage == "canary"
    assert "local router" in Path(deployment.path).read_text()
