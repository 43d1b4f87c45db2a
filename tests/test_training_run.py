"""run_training end to end on synthetic data, with a real (SQLite) registry for champions."""

from __future__ import annotations

import pytest
from synthetic import small_training_settings, synthetic_frame

from e2eai.registry import ModelRegistry
from e2eai.training import run_training
from e2eai.training.registration import register_candidate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame(4000, days=75, seed=3)


def test_torch_run_reports_metrics_plots_and_registers(frame, tmp_path):
    settings = small_training_settings(tmp_path)
    result = run_training(settings, frame)

    assert set(result.metrics) == {"model", "logreg", "hist_gb"}
    for name in ("model", "logreg", "hist_gb"):
        metrics = result.metrics[name]
        assert metrics["roc_auc"] > 0.6, name
        assert 0 < metrics["brier"] < 0.25
        assert set(metrics["slices"]) == {"carrier", "origin"}
        assert set(metrics["slices"]["origin"]) == {"EWR", "JFK", "LGA"}
    assert [g.name for g in result.gates] == [
        "beats_logistic_regression",
        "not_worse_than_champion",
    ]
    assert result.gates[1].passed and "no champion" in result.gates[1].message
    for plot in result.plots.values():
        assert plot.read_bytes()[:8] == PNG_MAGIC
    assert result.torch_summary is not None and result.torch_summary.world_size == 1

    with ModelRegistry.from_settings(settings) as registry:
        version = register_candidate(settings, result, registry)
        assert version.stage == "candidate"
        assert {
            "model.pt",
            "model_spec.json",
            "model_info.json",
            "holdout.parquet",
            "roc_curve.png",
        } <= set(version.artifacts)
        assert version.metrics["roc_auc"] == pytest.approx(result.metrics["model"]["roc_auc"])
        assert version.lineage["training_window"]["end"].isoformat() == "2013-02-28"

    # Same data and settings → same run directory: the finished run is picked up, not redone.
    again = run_training(settings, frame)
    assert again.run_dir == result.run_dir
    assert again.torch_summary.resumed_from_epoch == result.torch_summary.epochs_run
    assert again.metrics["model"]["roc_auc"] == pytest.approx(result.metrics["model"]["roc_auc"])


def test_champion_is_scored_on_the_same_holdout(frame, tmp_path):
    """A logreg champion vs a hist_gb challenger: the gate uses the champion's holdout AUC."""
    settings = small_training_settings(tmp_path, family="logreg")
    first = run_training(settings, frame)
    with ModelRegistry.from_settings(settings) as registry:
        champion = register_candidate(settings, first, registry)
        registry.transition(champion.version, "champion", reason="test: first model")

    challenger_settings = small_training_settings(tmp_path, family="hist_gb")
    second = run_training(challenger_settings, frame)
    assert second.champion_version == champion.version
    champion_auc = second.metrics["champion"]["roc_auc"]
    assert champion_auc == pytest.approx(first.metrics["model"]["roc_auc"])
    gate = second.gates[1]
    assert gate.observed["champion_roc_auc"] == pytest.approx(champion_auc)
    expected = second.metrics["model"]["roc_auc"] >= champion_auc
    assert gate.passed is expected
    # A logreg candidate cannot beat logistic regression by a positive margin.
    assert not first.gates[0].passed
