"""Anytime-valid paired canary comparison: coverage, error rates under repeated looks, guards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from e2eai.serving.sequential import (
    DEFAULT_MARGIN,
    BetState,
    CSState,
    PairedSequentialTest,
    SequentialPolicy,
    bet_max_log_wealth,
    bet_update,
    binormal_mu,
    brier_gap_for_auc,
    calibrated_probability,
    confidence_sequence,
    decide,
    decision_codes,
    pr_pl_eb_update,
)

RUNS = 200
MAX_ROWS = 13_000
LOOKS = np.arange(250, MAX_ROWS + 1, 250)  # a look after every batch of 250 labelled rows
STABLE_AUC = 0.76
RHO = 0.95  # correlation of the two models' scores on the same rows (shadow scoring)
PREVALENCE = 0.2


def paired_scores(
    rows: int | tuple[int, int], canary_auc: float, seed: int, stable_auc: float = STABLE_AUC
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_stable, p_canary, y): binormal scores, calibrated; canary = correlated stable score.

    Canary score = mu_c*y + RHO*z + sqrt(1 - RHO^2)*noise, so unit variance per class (its
    AUC is exactly ``canary_auc``) and correlation RHO with the stable score mu_s*y + z.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < PREVALENCE).astype(float)
    z, noise = rng.standard_normal(rows), rng.standard_normal(rows)
    mu_s, mu_c = binormal_mu(stable_auc), binormal_mu(canary_auc)
    p_stable = calibrated_probability(mu_s * y + z, mu_s, PREVALENCE)
    score_c = mu_c * y + RHO * z + np.sqrt(1 - RHO**2) * noise
    return p_stable, calibrated_probability(score_c, mu_c, PREVALENCE), y


def paired_d(canary_auc: float, seed: int) -> np.ndarray:
    p_s, p_c, y = paired_scores((RUNS, MAX_ROWS), canary_auc, seed)
    return (p_s - y) ** 2 - (p_c - y) ** 2


def first_decision(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcome (-1/0/+1) of each run stopping at its first non-hold look, and the look index."""
    decided = codes != 0
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), -1)
    outcome = np.where(first >= 0, codes[np.arange(len(codes)), first], 0)
    return outcome, first


def sequential_outcomes(d: np.ndarray, policy: SequentialPolicy) -> tuple[np.ndarray, np.ndarray]:
    promote = bet_max_log_wealth(d, -policy.margin, +1)[:, LOOKS - 1]
    rollback = bet_max_log_wealth(d, 0.0, -1)[:, LOOKS - 1]
    return first_decision(decision_codes(LOOKS, promote, rollback, policy))


def naive_outcomes(d: np.ndarray, policy: SequentialPolicy) -> tuple[np.ndarray, np.ndarray]:
    """The mutation: a fixed-sample CLT interval, re-checked at every look."""
    n = LOOKS
    mean = np.cumsum(d, axis=1)[:, n - 1] / n
    var = (np.cumsum(d**2, axis=1)[:, n - 1] / n - mean**2) * n / (n - 1)
    half = 1.96 * np.sqrt(var / n)
    enough = n >= policy.min_labelled
    rollback = enough & (mean + half < 0)
    promote = enough & ~rollback & (mean - half > -policy.margin)
    return first_decision(promote.astype(int) - rollback.astype(int))


CASES = {  # name: canary AUC
    "identical": STABLE_AUC,
    "at margin (-0.01)": 0.75,
    "worse (-0.02)": 0.74,
    "better (+0.02)": 0.78,
}


@pytest.fixture(scope="module")
def simulation() -> dict[str, dict[str, float]]:
    policy = SequentialPolicy()
    results: dict[str, dict[str, float]] = {}
    for seed, (name, auc) in enumerate(CASES.items()):
        d = paired_d(auc, seed=100 + seed)
        outcome, first = sequential_outcomes(d, policy)
        naive, _ = naive_outcomes(d, policy)
        results[name] = {
            "canary_auc": auc,
            "mean_d": float(d.mean()),
            "rollback": float(np.mean(outcome == -1)),
            "promote": float(np.mean(outcome == 1)),
            "median_rows": float(np.median(LOOKS[first[first >= 0]])) if (first >= 0).any() else 0,
            "naive_rollback": float(np.mean(naive == -1)),
            "naive_promote": float(np.mean(naive == 1)),
        }
    print(f"\n{RUNS} runs, look every 250 rows up to {MAX_ROWS}, margin {policy.margin}")
    print(f"{'case':<18} {'AUC':>5} {'mean d':>9} {'rollback':>8} {'promote':>8} {'median n':>8}"
          f" {'naive rb':>8} {'naive pr':>8}")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:<18} {r['canary_auc']:>5.2f} {r['mean_d']:>9.5f} {r['rollback']:>8.3f}"
            f" {r['promote']:>8.3f} {r['median_rows']:>8.0f} {r['naive_rollback']:>8.3f}"
            f" {r['naive_promote']:>8.3f}"
        )
    return results


# -- the confidence sequence ---------------------------------------------------------------


@pytest.mark.parametrize("dist", ["bernoulli", "beta"])
def test_cs_covers_true_mean_at_all_times(dist: str) -> None:
    rng = np.random.default_rng(1)
    if dist == "bernoulli":
        mu, x = 0.3, (rng.random((RUNS, 5000)) < 0.3).astype(float)
    else:
        mu, x = 2 / 7, rng.beta(2, 5, size=(RUNS, 5000))
    lower, upper = confidence_sequence(x, alpha=0.05)
    covered_whole_path = np.all((lower <= mu) & (mu <= upper), axis=1)
    assert covered_whole_path.mean() >= 0.95
    # ...and not trivially: the bounds shrink towards the mean.
    assert np.all(upper[:, -1] - lower[:, -1] < 0.1)
    assert np.all(np.diff(lower, axis=1) >= 0) and np.all(np.diff(upper, axis=1) <= 0)


def test_fixed_sample_interval_is_not_time_uniform() -> None:
    """Shows the coverage test has teeth: a CLT interval checked at every t fails it."""
    rng = np.random.default_rng(1)
    x = (rng.random((RUNS, 5000)) < 0.3).astype(float)
    n = np.arange(1, 5001)
    mean = np.cumsum(x, axis=1) / n
    half = 1.96 * np.sqrt(np.maximum(mean * (1 - mean), 1e-12) / n)
    covered = np.all(np.abs(mean - 0.3)[:, 30:] <= half[:, 30:], axis=1)
    assert covered.mean() < 0.95


def test_chunked_updates_equal_batch_exactly() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((3, 1000))
    lower, upper = confidence_sequence(x)
    state, parts = CSState.initial((3,)), []
    for chunk in np.split(x, [1, 2, 2, 250, 251, 700], axis=1):
        lo, up, state = pr_pl_eb_update(chunk, 0.05, state)
        parts.append((lo, up))
    assert np.array_equal(np.concatenate([p[0] for p in parts], axis=1), lower)
    assert np.array_equal(np.concatenate([p[1] for p in parts], axis=1), upper)


def test_incremental_equals_batch_decision() -> None:
    p_s, p_c, y = paired_scores(3000, 0.75, seed=3)
    test = PairedSequentialTest()
    for lo, hi in [(0, 1), (1, 1), (1, 100), (100, 1234), (1234, 3000)]:
        incremental = test.update(p_s[lo:hi], p_c[lo:hi], y[lo:hi])
    batch = decide(p_s, p_c, y)
    assert incremental == batch
    assert incremental.n == 3000
    json.dumps(batch.model_dump())


def test_chunked_betting_equals_batch_exactly() -> None:
    d = paired_d(0.75, seed=7)[:4, :2000]
    whole = bet_max_log_wealth(d, -DEFAULT_MARGIN, +1)
    state, parts = BetState.initial((4,)), []
    for lo, hi in [(0, 1), (1, 250), (250, 251), (251, 2000)]:
        running, state = bet_update(d[:, lo:hi], -DEFAULT_MARGIN, +1, state)
        parts.append(running)
    assert np.array_equal(np.concatenate(parts, axis=1), whole)


@pytest.mark.parametrize("canary_auc", [0.70, 0.75, 0.76, 0.78])
def test_reported_bounds_agree_with_the_decision(canary_auc: float) -> None:
    """The interval printed with a decision says what the tests did: rollback iff upper < 0,
    promote iff lower > -margin (and not rollback); the running mean lies inside."""
    p_s, p_c, y = paired_scores(4000, canary_auc, seed=11)
    decision = decide(p_s, p_c, y)
    assert decision.lower <= decision.mean <= decision.upper
    assert (decision.action == "rollback") == (decision.upper < 0)
    if decision.action != "rollback":
        assert (decision.action == "promote") == (decision.lower > -DEFAULT_MARGIN)
    assert decide(p_s, p_c, y, SequentialPolicy(bounds=False)).action == decision.action


def test_betting_covers_the_true_mean_under_every_look() -> None:
    """The wealth against the *true* mean crosses 2/alpha in at most alpha/2 of the runs,
    from either side, over 13,000 looks (one per row). 200 runs: a true rate of 2.5 %
    gives at most 12 crossings with 99.9 % probability (binomial)."""
    d = paired_d(0.75, seed=12)
    true_mean = brier_gap_for_auc(0.76, 0.75, n=4_000_000, seed=1)  # about -0.00205
    threshold = np.log(2 / 0.05)
    for side in (+1, -1):
        crossed = bet_max_log_wealth(d, true_mean, side)[:, -1] >= threshold
        assert crossed.sum() <= 12


# -- error rates under a look after every batch --------------------------------------------


def test_identical_models_rarely_rolled_back(simulation) -> None:
    assert simulation["identical"]["rollback"] <= 0.05


@pytest.mark.parametrize("case", ["at margin (-0.01)", "worse (-0.02)"])
def test_canary_worse_than_margin_rarely_promoted(simulation, case: str) -> None:
    assert simulation[case]["promote"] <= 0.05


def test_better_canary_promoted(simulation) -> None:
    assert simulation["better (+0.02)"]["promote"] >= 0.90
    assert 0 < simulation["better (+0.02)"]["median_rows"] <= MAX_ROWS


def test_naive_repeated_fixed_sample_test_inflates_false_rollbacks(simulation) -> None:
    """Mutation guard: without the time-uniform correction the 5 % error rate is exceeded."""
    assert simulation["identical"]["naive_rollback"] > 0.05
    assert simulation["identical"]["rollback"] < simulation["identical"]["naive_rollback"]


# -- the margin ----------------------------------------------------------------------------


def test_default_margin_is_the_brier_gap_of_001_auc() -> None:
    assert SequentialPolicy().margin == DEFAULT_MARGIN
    assert -brier_gap_for_auc(0.76, 0.75) == pytest.approx(DEFAULT_MARGIN, abs=1e-5)


def test_margin_changes_the_outcome() -> None:
    """Promote needs 'mean <= -margin' rejected: neither 0 nor a huge margin is the same rule."""
    p_s, p_c, y = paired_scores(30_000, STABLE_AUC, seed=4)  # equal quality, large n
    with_margin = decide(p_s, p_c, y, SequentialPolicy())
    assert -DEFAULT_MARGIN < with_margin.lower < 0 < with_margin.upper
    assert with_margin.action == "promote"
    assert decide(p_s, p_c, y, SequentialPolicy(margin=0)).action == "hold"

    few = slice(0, 300)  # too few rows: the interval still reaches below -margin
    held = decide(p_s[few], p_c[few], y[few], SequentialPolicy())
    assert held.lower < -DEFAULT_MARGIN and held.upper > 0
    assert held.action == "hold"
    assert decide(p_s[few], p_c[few], y[few], SequentialPolicy(margin=0.5)).action == "promote"


def test_rollback_and_min_labelled() -> None:
    p_s, p_c, y = paired_scores(6000, 0.70, seed=5)
    decision = decide(p_s, p_c, y)
    assert decision.action == "rollback" and decision.upper < 0 and decision.mean < 0
    early = decide(p_s[:50], p_c[:50], y[:50], SequentialPolicy(min_labelled=100))
    assert early.action == "hold" and "min_labelled" in early.reason
    empty = PairedSequentialTest().decision()
    assert (empty.n, empty.mean, empty.action) == (0, None, "hold")


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_stable", "p_canary", "y", "name"),
    [
        ([0.1, 0.2], [0.1], [0, 1], "p_stable, p_canary and y"),
        ([0.1, 0.2], [0.1, 0.2], [0], "same length"),
        ([0.1, 1.2], [0.1, 0.2], [0, 1], "p_stable"),
        ([0.1, 0.2], [-0.1, 0.2], [0, 1], "p_canary"),
        ([0.1, np.nan], [0.1, 0.2], [0, 1], "p_stable"),
        ([0.1, 0.2], [0.1, 0.2], [0, 2], "y must"),
        ([0.1, 0.2], [0.1, 0.2], [0, 0.5], "y must"),
    ],
)
def test_bad_input_raises_naming_the_argument(p_stable, p_canary, y, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        decide(p_stable, p_canary, y)
    with pytest.raises(ValueError, match=name):
        PairedSequentialTest().update(p_stable, p_canary, y)
