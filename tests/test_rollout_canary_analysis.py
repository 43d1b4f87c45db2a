"""Canary analysis: the fixed-sample statistics on synthetic samples, then real servers with
the default analysis (shadow scoring, the sequential paired test) — a shuffled-label model is
rolled back, a retrain that changed nothing is stepped 10 % → 50 % → promoted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from onnx_fixtures import build_onnx_model, synthetic_features

from e2eai.config import ServingSettings, Settings
from e2eai.serving.canary_analysis import (
    CanaryDecision,
    CanaryPolicy,
    SlotSamples,
    decide,
    next_weight,
    read_decisions,
    record_decision,
)
from e2eai.serving.local import LocalServing
from e2eai.serving.processes import free_port, pid_alive
from e2eai.serving.rollout import ModelSource
from e2eai.tasks.flights import schema

POLICY = CanaryPolicy(min_requests=100, min_labelled=100, min_class_count=10, analysis="fixed")


def _samples(
    n: int, *, errors: int = 0, latency: float = 2.0, auc_signal: float = 2.0, seed: int = 0
) -> SlotSamples:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    scores = 1 / (1 + np.exp(-(auc_signal * (labels - 0.5) + rng.normal(size=n))))
    return SlotSamples(
        requests=n,
        errors=errors,
        latencies_ms=list(rng.gamma(4.0, latency / 4.0, size=n)),
        scored=[(float(p), int(y)) for p, y in zip(scores, labels, strict=True)],
    )


def _decide(
    stable: SlotSamples, canary: SlotSamples, weight: int = 10, policy: CanaryPolicy = POLICY
) -> CanaryDecision:
    return decide(
        stable, canary, policy=policy, stable_version="1", canary_version="2", canary_weight=weight
    )


def test_equal_slots_step_through_the_plan_then_promote():
    stable, canary = _samples(400, seed=1), _samples(400, seed=2)
    first = _decide(stable, canary, weight=10)
    assert (first.action, first.weight_after) == ("step", 50)
    assert {e.metric: e.verdict for e in first.evidence} == {
        "error_rate": "pass",
        "latency_p95_ms": "pass",
        "roc_auc": "pass",
        "accuracy": "pass",
    }
    assert _decide(stable, canary, weight=50).action == "promote"
    assert next_weight(50, (10, 50, 100)) == 100 and next_weight(0, (10, 50)) == 10


def test_too_few_samples_holds():
    decision = _decide(_samples(400), _samples(30))
    assert decision.action == "hold" and decision.weight_after == 10
    assert "error_rate" in decision.reason
    error_check = next(e for e in decision.evidence if e.metric == "error_rate")
    assert error_check.verdict == "insufficient" and error_check.n_canary == 30


def test_more_canary_errors_roll_back_with_fisher_evidence():
    decision = _decide(_samples(400, errors=1), _samples(400, errors=25))
    assert decision.action == "rollback" and decision.weight_after == 0
    check = next(e for e in decision.evidence if e.metric == "error_rate")
    assert check.verdict == "fail" and check.p_value < POLICY.alpha / 4
    assert check.test.startswith("Fisher") and check.canary == 25 / 400


def test_latency_regression_must_be_significant_and_material():
    slow = _decide(_samples(400, latency=2.0), _samples(400, latency=8.0, seed=3))
    assert slow.action == "rollback"
    assert next(e for e in slow.evidence if e.metric == "latency_p95_ms").verdict == "fail"
    # 5 % slower with many samples: significant, yet within tolerance → not a regression.
    slightly = _decide(_samples(5000, latency=2.0), _samples(5000, latency=2.1, seed=4))
    check = next(e for e in slightly.evidence if e.metric == "latency_p95_ms")
    assert check.p_value < 0.01 and check.verdict == "pass"


def test_worse_auc_rolls_back_and_labels_can_be_required():
    decision = _decide(_samples(400), _samples(400, auc_signal=0.0, seed=5))
    auc = next(e for e in decision.evidence if e.metric == "roc_auc")
    assert decision.action == "rollback" and auc.verdict == "fail"
    assert auc.stable > 0.7 and abs(auc.canary - 0.5) < 0.1
    unlabelled = SlotSamples(requests=400, latencies_ms=[2.0] * 400)
    strict = POLICY.model_copy(update={"require_labels": True})
    held = _decide(unlabelled, unlabelled, policy=strict)
    assert held.action == "hold" and "roc_auc" in held.reason


def test_decisions_are_recorded_with_their_evidence(tmp_path):
    path = tmp_path / "decisions.jsonl"
    first = _decide(_samples(400), _samples(400, errors=30))
    record_decision(path, first)
    record_decision(path, _decide(_samples(400), _samples(400, seed=9)))
    log = read_decisions(path)
    assert [d.action for d in log] == ["rollback", "step"]
    assert log[0] == first and len(log[0].evidence) == 4
    assert read_decisions(path, limit=1)[0].action == "step"


# -- real servers ---------------------------------------------------------------------------

NAME = "flight-delay"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "good": build_onnx_model(root / "good.onnx", seed=7),
        # The same training as "good", exported again: a retrain that changed nothing. (A
        # model of another seed is measurably worse on the same rows, and is rolled back.)
        "peer": build_onnx_model(root / "peer.onnx", seed=7),
        "shuffled": build_onnx_model(root / "shuffled.onnx", seed=7, shuffle_labels=True),
    }


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory, models) -> Iterator[LocalServing]:
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        serving=ServingSettings(port=free_port(), model_name=NAME),
    )
    policy = CanaryPolicy(
        alpha=0.01,
        min_requests=60,
        min_labelled=150,
        min_class_count=20,
        latency_floor_ms=5.0,
        require_labels=True,  # promote on the paired quality evidence, not on health alone
    )
    manager = LocalServing(settings, policy)
    manager.start(ModelSource.from_path(models["good"], "1"))
    try:
        yield manager
    finally:
        manager.stop()


def _labelled_traffic(manager: LocalServing, requests: int, seed: int, rows: int = 4) -> None:
    """Send ``requests`` V2 requests of ``rows`` rows through the router, then their labels."""
    frame = synthetic_features(requests * rows, seed=seed)
    feedback = []
    endpoint = manager.state().endpoint
    with httpx.Client(base_url=endpoint, timeout=20) as client:
        for i in range(requests):
            chunk = frame.iloc[i * rows : (i + 1) * rows]
            body = {
                "inputs": [
                    {
                        "name": f.name,
                        "datatype": f.v2_datatype,
                        "shape": [rows, 1],
                        "data": [None if v != v else v for v in chunk[f.name].tolist()],
                    }
                    for f in schema.model_features()
                ]
            }
            request_id = uuid.uuid4().hex
            response = client.post(
                f"/v2/models/{NAME}/infer", json=body, headers={"x-request-id": request_id}
            )
            assert response.status_code == 200, response.text
            feedback.append(
                {"request_id": request_id, "labels": chunk[schema.LABEL].astype(int).tolist()}
            )
    matched = manager.feedback(feedback)
    assert matched["matched"] == requests


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_shuffled_label_canary_is_rolled_back(serving, models):
    serving.deploy(ModelSource.from_path(models["shuffled"], "shuffled"), 50)
    canary_pid = serving.state().canary.pid
    _labelled_traffic(serving, 160, seed=101)
    decision = serving.analyze()
    assert decision.action == "rollback" and decision.applied
    paired = next(e for e in decision.evidence if e.metric == "brier_paired")
    # Both models scored every one of the 640 labelled rows (shadow scoring), whoever answered.
    assert paired.verdict == "fail" and paired.n_stable == paired.n_canary == 160 * 4
    assert paired.canary > paired.stable + 0.05 and paired.upper < 0
    assert serving.state().canary is None and not pid_alive(canary_pid)
    assert serving.describe()["decisions"][-1]["action"] == "rollback"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_equally_good_canary_is_stepped_and_promoted(serving, models):
    serving.deploy(ModelSource.from_path(models["peer"], "peer"), 10)
    actions = []
    for round_ in range(8):
        _labelled_traffic(
            serving, 160 if serving.state().canary.weight >= 50 else 400, seed=200 + round_
        )
        decision = serving.analyze()
        actions.append((decision.action, decision.weight_before, decision.weight_after))
        if decision.action in {"promote", "rollback"}:
            break
    assert ("step", 10, 50) in actions, actions
    assert actions[-1] == ("promote", 50, 100), actions
    paired = next(e for e in decision.evidence if e.metric == "brier_paired")
    assert paired.verdict == "pass" and paired.lower > -serving.policy.sequential_margin
    assert serving.state().stable.version == "peer" and serving.state().canary is None
