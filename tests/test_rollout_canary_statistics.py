"""Canary analysis statistics, pinned on deterministic samples.

Each slot is built from quantile grids rather than random draws, so every p-value and bound is
fixed; each test recomputes the statistic it relies on (independently of the module) and asserts
where it lands before asserting the decision. Together they pin the Bonferroni correction, the
accuracy check, the AUC non-inferiority bound and the one-metric-regresses rollbacks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import fisher_exact, norm

from e2eai.serving import sequential
from e2eai.serving.canary_analysis import (
    CanaryDecision,
    CanaryPolicy,
    CheckEvidence,
    SlotSamples,
    decide,
)

# The fixed-sample analysis (independent slots): what these tests pin. The sequential one is
# pinned in tests/test_serving_sequential.py and below (test_sequential_*).
POLICY = CanaryPolicy(min_requests=100, min_labelled=100, min_class_count=10, analysis="fixed")
LABELLED = POLICY.model_copy(update={"require_labels": True})


def _scored(n: int, signal: float) -> list[tuple[float, int]]:
    """``n`` rows, half positive; logits are ±signal/2 plus a normal quantile grid."""
    half = n // 2
    grid = norm.ppf((np.arange(half) + 0.5) / half)
    pos = 1 / (1 + np.exp(-(signal / 2 + grid)))
    neg = 1 / (1 + np.exp(-(-signal / 2 + grid)))
    rows: list[tuple[float, int]] = []
    for p, q in zip(pos, neg, strict=True):
        rows += [(float(p), 1), (float(q), 0)]
    return rows


def _slot(
    n: int = 400,
    *,
    errors: int = 0,
    latency_factor: float = 1.0,
    scored: list[tuple[float, int]] | None = None,
) -> SlotSamples:
    latencies = np.linspace(1.0, 3.0, n) * latency_factor
    return SlotSamples(
        requests=n,
        errors=errors,
        latencies_ms=[float(v) for v in latencies],
        scored=_scored(n, 2.0) if scored is None else scored,
    )


def _decide(
    stable: SlotSamples,
    canary: SlotSamples,
    weight: int = 10,
    policy: CanaryPolicy = POLICY,
    paired: list[tuple[float, float, int]] | None = None,
) -> CanaryDecision:
    return decide(
        stable,
        canary,
        policy=policy,
        stable_version="1",
        canary_version="2",
        canary_weight=weight,
        paired=paired,
    )


def _check(decision: CanaryDecision, metric: str) -> CheckEvidence:
    return next(e for e in decision.evidence if e.metric == metric)


def _fisher_p(stable: SlotSamples, canary: SlotSamples) -> float:
    table = [
        [canary.errors, canary.requests - canary.errors],
        [stable.errors, stable.requests - stable.errors],
    ]
    return float(fisher_exact(table, alternative="greater")[1])


def _auc_hanley_mcneil(scored: list[tuple[float, int]]) -> tuple[float, float]:
    """AUC by counting pairs (ties 1/2) and its Hanley–McNeil (1982) standard error."""
    pos = np.array([p for p, y in scored if y == 1])
    neg = np.array([p for p, y in scored if y == 0])
    diff = pos[:, None] - neg[None, :]
    auc = float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)
    n_pos, n_neg = len(pos), len(neg)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)
    ) / (n_pos * n_neg)
    return auc, math.sqrt(variance)


# -- Bonferroni ------------------------------------------------------------------------------


def test_p_value_between_corrected_and_family_level_does_not_roll_back():
    corrected = POLICY.alpha / 4
    stable, canary = _slot(errors=0), _slot(errors=5)
    p = _fisher_p(stable, canary)
    assert corrected < p < POLICY.alpha  # ≈ 0.031: significant only without the correction
    decision = _decide(stable, canary)
    assert decision.action != "rollback"
    assert decision.action == "step" and decision.weight_after == 50
    check = _check(decision, "error_rate")
    assert check.p_value == pytest.approx(p) and check.verdict == "pass"
    assert check.alpha == pytest.approx(corrected)


def test_p_value_below_corrected_level_rolls_back():
    stable, canary = _slot(errors=0), _slot(errors=7)
    p = _fisher_p(stable, canary)
    assert p < POLICY.alpha / 4  # ≈ 0.0076
    decision = _decide(stable, canary)
    assert _check(decision, "error_rate").verdict == "fail"
    assert decision.action == "rollback" and decision.weight_after == 0
    assert "error_rate" in decision.reason


def test_every_check_uses_the_corrected_level():
    decision = _decide(_slot(), _slot())
    assert [e.alpha for e in decision.evidence] == [pytest.approx(POLICY.alpha / 4)] * 4


# -- one regression at a time ----------------------------------------------------------------


def test_only_accuracy_regresses_rolls_back_naming_accuracy():
    stable = _slot()
    # A strictly increasing recalibration: identical ranking (hence identical AUC), but every
    # score lands at or above the 0.5 threshold, so the canary predicts "positive" for all rows.
    canary = _slot(scored=[(0.5 + 0.5 * p, y) for p, y in stable.scored])
    assert _auc_hanley_mcneil(canary.scored) == _auc_hanley_mcneil(stable.scored)
    decision = _decide(stable, canary)
    accuracy = _check(decision, "accuracy")
    assert accuracy.stable > 0.8 and accuracy.canary == pytest.approx(0.5)
    assert accuracy.verdict == "fail" and accuracy.p_value < POLICY.alpha / 4
    for metric in ("error_rate", "latency_p95_ms", "roc_auc"):
        assert _check(decision, metric).verdict != "fail", metric
    assert decision.action == "rollback" and decision.weight_after == 0
    assert "accuracy" in decision.reason
    assert "roc_auc" not in decision.reason and "error_rate" not in decision.reason


def test_only_error_rate_regresses_rolls_back_naming_error_rate():
    decision = _decide(_slot(errors=0), _slot(errors=25))
    assert [e.metric for e in decision.evidence if e.verdict == "fail"] == ["error_rate"]
    assert decision.action == "rollback" and decision.reason.startswith("error_rate worse")
    assert "latency" not in decision.reason and "accuracy" not in decision.reason


def test_only_latency_regresses_rolls_back_naming_latency():
    decision = _decide(_slot(), _slot(latency_factor=3.0))
    latency = _check(decision, "latency_p95_ms")
    assert latency.canary == pytest.approx(3 * latency.stable)
    assert [e.metric for e in decision.evidence if e.verdict == "fail"] == ["latency_p95_ms"]
    assert decision.action == "rollback" and decision.reason.startswith("latency_p95_ms worse")
    assert "error_rate" not in decision.reason and "accuracy" not in decision.reason


# -- AUC non-inferiority ---------------------------------------------------------------------


def _auc_bound(stable: SlotSamples, canary: SlotSamples, alpha: float) -> tuple[float, float]:
    """(one-sided p of "canary AUC lower", lower confidence bound of canary − stable AUC)."""
    auc_s, se_s = _auc_hanley_mcneil(stable.scored)
    auc_c, se_c = _auc_hanley_mcneil(canary.scored)
    se = math.hypot(se_s, se_c)
    return float(norm.cdf((auc_c - auc_s) / se)), auc_c - auc_s - float(norm.ppf(1 - alpha)) * se


def test_auc_not_significantly_worse_but_not_shown_non_inferior_holds():
    stable, canary = _slot(100, scored=_scored(100, 1.2)), _slot(100, scored=_scored(100, 1.0))
    alpha = LABELLED.alpha / 4
    p, lower = _auc_bound(stable, canary, alpha)
    assert p >= alpha  # not a significant regression ...
    assert lower < -LABELLED.auc_noninferiority_margin  # ... but not shown non-inferior either
    decision = _decide(stable, canary, weight=50, policy=LABELLED)
    auc = _check(decision, "roc_auc")
    assert auc.p_value == pytest.approx(p)
    assert auc.verdict == "insufficient" and "not yet shown non-inferior" in auc.note
    assert f"{lower:+.4f}" in auc.note
    assert _check(decision, "accuracy").verdict == "pass"
    assert decision.action == "hold" and decision.weight_after == 50
    assert "roc_auc" in decision.reason and "non-inferior" in decision.reason


def test_auc_shown_non_inferior_allows_promotion():
    stable, canary = _slot(2000), _slot(2000, scored=_scored(2000, 1.95))
    alpha = LABELLED.alpha / 4
    p, lower = _auc_bound(stable, canary, alpha)
    assert p >= alpha and lower >= -LABELLED.auc_noninferiority_margin
    decision = _decide(stable, canary, weight=50, policy=LABELLED)
    auc = _check(decision, "roc_auc")
    assert auc.verdict == "pass" and auc.note.startswith("non-inferior")
    assert {e.verdict for e in decision.evidence} == {"pass"}
    assert decision.action == "promote" and decision.weight_after == 100
    assert _decide(stable, canary, weight=10, policy=LABELLED).action == "step"


# -- minimum counts --------------------------------------------------------------------------


def test_below_minimum_requests_holds_instead_of_promoting():
    decision = _decide(_slot(400), _slot(POLICY.min_requests - 1), weight=50)
    assert decision.action == "hold" and decision.weight_after == 50
    for metric in ("error_rate", "latency_p95_ms", "roc_auc", "accuracy"):
        check = _check(decision, metric)
        assert check.verdict == "insufficient" and check.p_value is None, metric
    assert "not enough samples" in decision.reason
    assert "error_rate" in decision.reason and "latency_p95_ms" in decision.reason


def test_below_minimum_labelled_holds_when_labels_are_required():
    stable = _slot(400)
    canary = _slot(400, scored=_scored(LABELLED.min_labelled - 2, 2.0))
    decision = _decide(stable, canary, weight=50, policy=LABELLED)
    assert _check(decision, "error_rate").verdict == "pass"
    assert _check(decision, "accuracy").verdict == "insufficient"
    assert decision.action == "hold" and decision.weight_after == 50
    assert "roc_auc" in decision.reason and "accuracy" in decision.reason
    # Without the requirement the same evidence is enough to promote.
    assert _decide(stable, canary, weight=50).action == "promote"


# -- the sequential analysis: paired shadow-scored rows ------------------------------------------

SEQUENTIAL = POLICY.model_copy(update={"analysis": "sequential", "require_labels": True})


def _pairs(n: int, push: float) -> list[tuple[float, float, int]]:
    """``n`` shadow-scored rows: stable's probabilities from the quantile grid, the canary's
    the same pushed by ``push`` towards the wrong label (worse for push > 0)."""
    rows = []
    for p, y in _scored(n, 2.0):
        wrong = 1 - y
        rows.append((p, float(np.clip(p + push * (wrong - p), 0, 1)), y))
    return rows


def _first_rollback(rows: list[tuple[float, float, int]], alpha: float) -> int:
    """The first row count at which the sequential test alone, at level ``alpha``, rolls back
    (every prefix a look)."""
    policy = sequential.SequentialPolicy(alpha=alpha, min_labelled=SEQUENTIAL.min_labelled)
    test = sequential.PairedSequentialTest(policy.model_copy(update={"bounds": False}))
    for n, (a, b, y) in enumerate(rows, start=1):
        if test.update([a], [b], [y]).action == "rollback":
            return n
    raise AssertionError("never rolled back")


def test_sequential_quality_check_gets_half_the_family_level():
    """Health checks take alpha/4 each, the paired test the remaining alpha/2: at the row
    count where a test at alpha/2 first rolls back, the decision does; one row earlier it does
    not, though a test at the whole alpha (no correction) already would have."""
    rows = _pairs(2000, 0.02)
    at_half = _first_rollback(rows, SEQUENTIAL.alpha / 2)
    at_whole = _first_rollback(rows, SEQUENTIAL.alpha)
    at_quarter = _first_rollback(rows, SEQUENTIAL.alpha / 4)
    assert at_whole < at_half < at_quarter  # the three levels part at different rows
    healthy = (_slot(), _slot())
    before = _decide(*healthy, policy=SEQUENTIAL, paired=rows[: at_half - 1])
    after = _decide(*healthy, policy=SEQUENTIAL, paired=rows[:at_half])
    assert before.action != "rollback" and after.action == "rollback"
    check = _check(after, "brier_paired")
    assert check.alpha == pytest.approx(SEQUENTIAL.alpha / 2) and check.verdict == "fail"
    assert [e.alpha for e in after.evidence[:2]] == [pytest.approx(SEQUENTIAL.alpha / 4)] * 2
    assert after.reason.startswith("brier_paired worse") and "error_rate" not in after.reason
    assert check.upper is not None and check.upper < 0  # the bound reported says so too


def test_sequential_passes_within_the_margin_and_never_beyond_it():
    identical = _pairs(3000, 0.0)
    decision = _decide(_slot(), _slot(), weight=50, policy=SEQUENTIAL, paired=identical)
    check = _check(decision, "brier_paired")
    assert check.verdict == "pass" and check.lower is not None
    assert -SEQUENTIAL.sequential_margin < check.lower <= 0 <= check.upper
    assert decision.action == "promote"
    # The same rows with no margin: "not worse at all" cannot be shown, so it holds.
    strict = SEQUENTIAL.model_copy(update={"sequential_margin": 0.0})
    held = _decide(_slot(), _slot(), weight=50, policy=strict, paired=identical)
    assert _check(held, "brier_paired").verdict == "insufficient" and held.action == "hold"
    # A canary worse than the margin on every row never passes, however many rows.
    rows = _pairs(2000, 0.05)
    gap = np.mean([(b - y) ** 2 - (a - y) ** 2 for a, b, y in rows])
    assert gap > SEQUENTIAL.sequential_margin
    worse = _decide(_slot(), _slot(), weight=50, policy=SEQUENTIAL, paired=rows)
    assert _check(worse, "brier_paired").verdict == "fail" and worse.action == "rollback"


def test_sequential_confidently_worse_rolls_back_even_within_the_margin():
    """Slightly worse on every row (by less than the margin): once it is confidently worse it
    is rolled back, though it is not worse than the margin: a worse model never replaces a
    better one just because the margin would tolerate it."""
    rows = _pairs(8000, 0.004)
    gap = np.mean([(b - y) ** 2 - (a - y) ** 2 for a, b, y in rows])
    assert 0 < gap < SEQUENTIAL.sequential_margin
    decision = _decide(_slot(), _slot(), weight=50, policy=SEQUENTIAL, paired=rows)
    assert decision.action == "rollback"


def test_sequential_needs_paired_rows_only_when_labels_are_required():
    held = _decide(_slot(), _slot(), weight=50, policy=SEQUENTIAL, paired=[])
    check = _check(held, "brier_paired")
    assert check.verdict == "insufficient" and "shadow" in check.note
    assert held.action == "hold" and "brier_paired" in held.reason
    optional = SEQUENTIAL.model_copy(update={"require_labels": False})
    assert _decide(_slot(), _slot(), weight=50, policy=optional).action == "promote"
    # Too few rows: hold, however good they look.
    few = _pairs(SEQUENTIAL.min_labelled - 2, 0.0)
    assert _decide(_slot(), _slot(), weight=50, policy=SEQUENTIAL, paired=few).action == "hold"
    # Quality settled but a health check short of samples: still hold.
    few_requests = _slot(POLICY.min_requests - 1)
    short = _decide(_slot(), few_requests, weight=50, policy=SEQUENTIAL, paired=_pairs(3000, 0))
    assert short.action == "hold" and "error_rate" in short.reason


def test_sequential_ignores_the_independent_slot_samples():
    """The sequential analysis reads only the paired rows: the slots' own scored rows (which
    the fixed analysis compares) could say anything."""
    stable = _slot()
    terrible = _slot(scored=[(1 - p, y) for p, y in stable.scored])
    decision = _decide(stable, terrible, weight=50, policy=SEQUENTIAL, paired=_pairs(3000, 0.0))
    assert decision.action == "promote"
    assert {e.metric for e in decision.evidence} == {"error_rate", "latency_p95_ms", "brier_paired"}
    assert _decide(stable, terrible, weight=50, policy=LABELLED).action == "rollback"
