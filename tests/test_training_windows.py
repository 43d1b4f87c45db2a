"""Non-default ``features.windows_hours`` reach training and export, not only Feast.

The defect: training and export read the default windows (24 h, 168 h), so a run with
other windows failed to find its columns. Now both take the task the settings choose, and
the exported graph's inputs are that task's features.
"""

from __future__ import annotations

from datetime import date

import onnx
import pytest
from synthetic import flight_task, small_training_settings, synthetic_frame

from e2eai.config import ExportSettings
from e2eai.errors import ModelArtifactError
from e2eai.export.model_export import export_model
from e2eai.export.registered import export_local
from e2eai.tasks import load_task
from e2eai.training import run_training
from e2eai.training.model_io import read_info

WINDOWS = (6, 48)


def _onnx_inputs(path) -> list[str]:
    return [i.name for i in onnx.load(path).graph.input]


def test_synthetic_run_with_other_windows_trains_and_exports_the_tasks_features(tmp_path):
    task = flight_task(WINDOWS)
    assert {"route_delay_rate_6h", "carrier_flights_48h"} <= set(task.feature_names)
    assert "route_delay_rate_24h" not in task.feature_names
    settings = small_training_settings(tmp_path, windows_hours=WINDOWS, epochs=2)
    assert load_task(settings).feature_names == task.feature_names  # the settings choose it
    frame = synthetic_frame(3000, days=75, seed=3, windows_hours=WINDOWS)

    result = run_training(settings, frame)  # the task comes from the settings
    info = read_info(result.model_dir)
    assert info["task"] == "flights" and info["features"] == task.feature_names
    assert result.metrics["model"]["roc_auc"] > 0.6

    exported = export_local(settings, result.model_dir)
    assert _onnx_inputs(exported.onnx_path) == task.feature_names
    baseline = export_model(
        result.run_dir / "baselines" / "hist_gb" / "model",
        frame.tail(500),
        tmp_path / "hist_gb-onnx",
        ExportSettings(quantize=False),
        task,
    )
    assert _onnx_inputs(baseline.onnx_path) == task.feature_names
    assert baseline.parity.max_abs_diff <= 1e-4

    # The default windows' contract is refused with the difference named, never served.
    with pytest.raises(ModelArtifactError, match=r"lacks: .*route_delay_rate_24h"):
        export_local(settings, result.model_dir, task=flight_task())

    # Serving validates against the same task: a request of its features is answered, and a
    # server holding the default windows refuses the model when it loads, naming the input.
    from e2eai.errors import ServingError
    from e2eai.serving.client import placeholder_request
    from e2eai.serving.predictor import OnnxPredictor
    from e2eai.serving.validation import tensors_from_v2_inputs

    predictor = OnnxPredictor("flight-delay", exported.onnx_path, task)
    predictor.load()
    tensors = tensors_from_v2_inputs(placeholder_request(task)["inputs"])
    (probability,) = predictor.run(predictor.feed_from_tensors(tensors))
    assert 0.0 <= probability <= 1.0
    with pytest.raises(ServingError, match=r"no input .route_flights_24h"):
        OnnxPredictor("flight-delay", exported.onnx_path, flight_task()).load()


@pytest.fixture
def windows_in_environment(monkeypatch):
    """The Feast definition files read the process's settings: give them the windows too."""
    from e2eai.config import get_settings

    monkeypatch.setenv("E2EAI_FEATURES__WINDOWS_HOURS", "[6, 48]")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_real_flights_with_other_windows_through_feast_training_and_export(
    tmp_path, raw_flight_tables, windows_in_environment
):
    """Real January flights: prepare → Feast (6 h / 48 h) → train → export."""
    from conftest import FLIGHT_WINDOW, copy_feature_repo, flights_between

    from e2eai.config import DataSettings, Settings, TrainingSettings
    from e2eai.tasks.flights.prepare import prepare_flights

    start, end = FLIGHT_WINDOW
    settings = Settings(
        home=tmp_path,
        artifacts={"uri": str(tmp_path / "artifacts")},
        registry={"database_url": f"sqlite:///{tmp_path / 'registry.db'}"},
        features={"repo": tmp_path / "feature_repo", "windows_hours": WINDOWS},
        data=DataSettings(start=start, end=end),
        training=TrainingSettings(
            family="hist_gb",
            train_start=start,
            train_end=date(2013, 1, 7),
            validation_days=2,
            holdout_days=3,
        ),
    )
    task = load_task(settings)
    assert task.feature_names == flight_task(WINDOWS).feature_names
    copy_feature_repo(settings.features.repo)
    prepare_flights(settings, raw=flights_between(raw_flight_tables, start, end))
    task.build_feature_tables(settings)
    task.apply_features(settings)
    task.materialize(settings)

    result = run_training(settings)  # reads the training set from Feast
    assert read_info(result.model_dir)["features"] == task.feature_names
    exported = export_local(settings, result.model_dir)
    assert _onnx_inputs(exported.onnx_path) == task.feature_names
    assert exported.parity.max_abs_diff <= 1e-4
