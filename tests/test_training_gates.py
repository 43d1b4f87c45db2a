"""Gates: beats logistic regression by a margin; not worse than the champion (3 cases)."""

from __future__ import annotations

import pytest

from e2eai.training.gates import baseline_gate, champion_gate


def test_challenger_wins_against_champion():
    gate = champion_gate(model_auc=0.74, champion_auc=0.72, tolerance=0.0, champion_version=3)
    assert gate.passed
    assert gate.observed["champion_roc_auc"] == 0.72
    assert gate.observed["gap"] == pytest.approx(0.02)
    assert "v3" in gate.message


def test_champion_wins_against_challenger():
    gate = champion_gate(model_auc=0.70, champion_auc=0.72, tolerance=0.01, champion_version=3)
    assert not gate.passed
    assert gate.observed["gap"] == pytest.approx(-0.02)
    assert gate.threshold == 0.01
    assert "worse than champion v3" in gate.message


def test_challenger_within_tolerance_passes():
    assert champion_gate(0.715, 0.72, tolerance=0.01).passed


def test_no_champion_passes_with_reason():
    gate = champion_gate(model_auc=0.6, champion_auc=None, tolerance=0.0)
    assert gate.passed
    assert "no champion" in gate.message
    assert gate.observed["champion_roc_auc"] is None


@pytest.mark.parametrize(
    ("model_auc", "logreg_auc", "passed"),
    [(0.75, 0.72, True), (0.73, 0.72, False), (0.70, 0.72, False), (0.74, 0.72, True)],
)
def test_baseline_gate_requires_the_margin(model_auc, logreg_auc, passed):
    gate = baseline_gate(model_auc, logreg_auc, margin=0.02, baseline="logistic regression")
    assert gate.passed is passed
    assert gate.observed["lead"] == pytest.approx(model_auc - logreg_auc)
    assert gate.observed["baseline_roc_auc"] == logreg_auc
    assert gate.name == "beats_logistic_regression"
    assert "logistic regression" in gate.message
