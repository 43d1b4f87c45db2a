"""Anytime-valid paired comparison of a canary against the stable model (shadow scoring).

Every labelled row is scored by both models, so the comparison is paired on the same rows:
``d_i = brier(p_stable_i, y_i) - brier(p_canary_i, y_i)`` (positive = canary better,
``d_i`` in [-1, 1]). Two sequential tests by betting (Waudby-Smith & Ramdas, "Estimating
means of bounded random variables by betting", JRSS-B 86(1), 2023; Shafer's testing by
betting) read the running wealth of a gambler who bets against each null:

- rollback once H0 "canary not worse" (mean d >= 0) is rejected at alpha/2;
- promote once H0 "canary worse than the margin" (mean d <= -margin) is rejected at alpha/2;
- otherwise hold; always hold before ``min_labelled`` rows.

The wealth is a non-negative supermartingale under its null, so by Ville's inequality each
error rate holds at every sample size simultaneously: the router may look after every batch
without inflating it, unlike a fixed-sample test re-run at each look. The interval reported
with a decision is the same tests' confidence sequence on a grid of nulls.

Also here: the predictable plug-in empirical-Bernstein confidence sequence (PrPl-EB, ibid.
Theorem 2) for means of [0, 1] variables, closed-form and streaming, used for risk tracking.
No maintained wheel provides either (``confseq`` 0.0.11 is an alpha sdist needing a C++
build).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit
from scipy.stats import norm

Action = Literal["promote", "hold", "rollback"]

# Non-inferiority margin in mean Brier difference, equivalent to 0.01 ROC-AUC: binormal scores
# at a 20 % positive rate (negatives N(0,1), positives N(mu,1), mu = sqrt(2)*Phi^-1(AUC)),
# mapped to the exact posterior p = sigmoid(logit(0.2) + mu*s - mu^2/2) (perfectly calibrated),
# stable AUC 0.76 (Brier 0.13534) vs canary AUC 0.75 (Brier 0.13739): the canary is worse by
# 2.05e-3 in mean Brier. Recomputed as -brier_gap_for_auc() (seed 0, 2e6 rows); a test checks.
DEFAULT_MARGIN = 0.00205

_C = 0.5  # truncation of the betting fraction lambda_t (the paper suggests 1/2 or 3/4)


class SequentialPolicy(BaseModel):
    """How much evidence a sequential decision needs."""

    model_config = ConfigDict(frozen=True)

    alpha: float = Field(0.05, gt=0, lt=1, description="Error level of the whole sequence.")
    margin: float = Field(
        DEFAULT_MARGIN, ge=0, description="Non-inferiority margin in mean Brier difference."
    )
    min_labelled: int = Field(100, ge=0, description="Rows before any decision but hold.")
    bounds: bool = Field(
        True,
        description="Report the confidence sequence's bounds with each decision (a grid of "
        "tests; the decision itself never reads them, so simulations may skip them).",
    )


class SequentialDecision(BaseModel):
    """A decision with its evidence; ``model_dump()`` is JSON-ready."""

    model_config = ConfigDict(frozen=True)

    action: Action
    n: int
    mean: float | None
    lower: float
    upper: float
    margin: float
    reason: str
    e_rollback: float = 0.0  # largest wealth so far of the test for 'canary worse'
    e_promote: float = 0.0  # ... and of the test for 'canary within the margin'


# -- inputs --------------------------------------------------------------------------------


def _check_prob(name: str, p: object) -> np.ndarray:
    a = np.asarray(p, dtype=float).ravel()
    if not np.all(np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise ValueError(f"{name} must be probabilities in [0, 1]")
    return a


def brier_differences(p_stable: object, p_canary: object, y: object) -> np.ndarray:
    """Per-row ``brier(stable) - brier(canary)`` in [-1, 1]; positive = canary better.

    Raises ValueError naming the argument on mismatched lengths, probabilities outside
    [0, 1] (or non-finite) and labels other than 0/1.
    """
    ps, pc = _check_prob("p_stable", p_stable), _check_prob("p_canary", p_canary)
    yy = np.asarray(y, dtype=float).ravel()
    if not np.all((yy == 0) | (yy == 1)):
        raise ValueError("y must be labels in {0, 1}")
    if not (len(ps) == len(pc) == len(yy)):
        raise ValueError(
            f"p_stable, p_canary and y must have the same length "
            f"(got {len(ps)}, {len(pc)}, {len(yy)})"
        )
    return (ps - yy) ** 2 - (pc - yy) ** 2


# -- the confidence sequence ---------------------------------------------------------------


@dataclass(frozen=True)
class CSState:
    """Running sums after ``t`` observations (arrays over any leading batch axes)."""

    t: int
    sum_x: np.ndarray  # sum of x_i
    sum_sq: np.ndarray  # sum of (x_i - mu_hat_i)^2
    sum_lam: np.ndarray  # sum of lambda_i
    sum_lam_x: np.ndarray  # sum of lambda_i * x_i
    sum_v_psi: np.ndarray  # sum of v_i * psi_E(lambda_i)
    lower: np.ndarray  # running intersection so far
    upper: np.ndarray

    @classmethod
    def initial(cls, shape: tuple[int, ...] = ()) -> CSState:
        zero = np.zeros(shape)
        return cls(0, zero, zero, zero, zero, zero, zero, np.ones(shape))


def _cumsum(start: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Sequential left-to-right sums seeded with `start`: feeding a sequence in chunks gives
    # bit-identical results to feeding it at once.
    start = np.asarray(start, dtype=float)
    return np.cumsum(np.concatenate([start[..., None], v], axis=-1), axis=-1)[..., 1:]


def _shift(first: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Values at t-1: ``first`` then ``v`` without its last element."""
    return np.concatenate([np.asarray(first)[..., None], v[..., :-1]], axis=-1)


def pr_pl_eb_update(
    x: np.ndarray, alpha: float, state: CSState
) -> tuple[np.ndarray, np.ndarray, CSState]:
    """Extend the PrPl-EB confidence sequence by the observations ``x`` (last axis = time).

    For x_i in [0, 1] i.i.d. (or with constant conditional mean) mu, the returned bounds
    satisfy P(for all t: lower_t <= mu <= upper_t) >= 1 - alpha (Waudby-Smith & Ramdas 2023,
    Theorem 2). With t counting all observations so far,

    - mu_hat_t = (1/2 + sum x_i) / (t + 1), sigma2_t = (1/4 + sum (x_i - mu_hat_i)^2) / (t + 1);
    - lambda_t = min(sqrt(2 log(2/alpha) / (sigma2_{t-1} t log(1 + t))), c), c = 1/2 (eq. 15);
    - v_i = 4 (x_i - mu_hat_{i-1})^2, psi_E(l) = (-log(1 - l) - l) / 4;
    - C_t = sum l_i x_i / sum l_i  +-  (log(2/alpha) + sum v_i psi_E(l_i)) / sum l_i
      (eqs. 13-14), clipped to [0, 1] and intersected with C_{t-1} (running intersection).

    Leading axes of ``x`` are independent sequences (vectorised simulation).
    Returns (lower, upper, new state); chunked updates equal one batch update exactly.
    """
    x = np.asarray(x, dtype=float)
    if x.shape[-1] == 0:
        return x.copy(), x.copy(), state
    log2a = math.log(2 / alpha)
    t = state.t + np.arange(1, x.shape[-1] + 1, dtype=float)
    sum_x = _cumsum(state.sum_x, x)
    mu_hat = (0.5 + sum_x) / (t + 1)
    mu_prev = _shift((0.5 + state.sum_x) / (state.t + 1), mu_hat)
    sum_sq = _cumsum(state.sum_sq, (x - mu_hat) ** 2)
    sigma2_prev = _shift((0.25 + state.sum_sq) / (state.t + 1), (0.25 + sum_sq) / (t + 1))
    lam = np.minimum(np.sqrt(2 * log2a / (sigma2_prev * t * np.log1p(t))), _C)
    v_psi = (x - mu_prev) ** 2 * (-np.log1p(-lam) - lam)  # v_i * psi_E(lambda_i): 4/4 cancel
    sum_lam = _cumsum(state.sum_lam, lam)
    sum_lam_x = _cumsum(state.sum_lam_x, lam * x)
    sum_v_psi = _cumsum(state.sum_v_psi, v_psi)
    centre = sum_lam_x / sum_lam
    width = (log2a + sum_v_psi) / sum_lam
    lower = np.maximum.accumulate(
        np.concatenate([np.asarray(state.lower)[..., None], np.maximum(centre - width, 0)], -1),
        axis=-1,
    )[..., 1:]
    upper = np.minimum.accumulate(
        np.concatenate([np.asarray(state.upper)[..., None], np.minimum(centre + width, 1)], -1),
        axis=-1,
    )[..., 1:]
    new = CSState(
        int(t[-1]),
        sum_x[..., -1],
        sum_sq[..., -1],
        sum_lam[..., -1],
        sum_lam_x[..., -1],
        sum_v_psi[..., -1],
        lower[..., -1],
        upper[..., -1],
    )
    return lower, upper, new


def confidence_sequence(x: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """PrPl-EB (1 - alpha) confidence sequence for the mean of x in [0, 1], at every t."""
    x = np.asarray(x, dtype=float)
    lower, upper, _ = pr_pl_eb_update(x, alpha, CSState.initial(x.shape[:-1]))
    return lower, upper


def paired_confidence_sequence(d: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Time-uniform (1 - alpha) CS for the mean of d in [-1, 1] (mapped via (d + 1) / 2)."""
    lower, upper = confidence_sequence((np.asarray(d, dtype=float) + 1) / 2, alpha)
    return 2 * lower - 1, 2 * upper - 1


# -- the decision: two sequential tests by betting ----------------------------------------

_BET_CAP = 0.75  # largest share of the wealth at stake on one row (the paper's 3/4)


@dataclass(frozen=True)
class BetState:
    """Running sums of a betting test after ``t`` rows (arrays over any leading axes)."""

    t: int
    sum_x: np.ndarray  # sum of x_i = side * (d_i - m)
    sum_sq: np.ndarray  # sum of (x_i - mean_i)^2
    log_wealth: np.ndarray
    max_log_wealth: np.ndarray  # running maximum: crossing once is crossing for good

    @classmethod
    def initial(cls, shape: tuple[int, ...] = ()) -> BetState:
        zero = np.zeros(shape)
        return cls(0, zero, zero, zero, np.full(shape, -np.inf))


def bet_update(d: np.ndarray, m: object, side: int, state: BetState) -> tuple[np.ndarray, BetState]:
    """Extend the log-wealth of betting that ``side * (mean(d) - m) > 0`` by the rows ``d``.

    For d_i in [-1, 1], the wealth K_t = prod (1 + lambda_i * x_i), x_i = side * (d_i - m),
    with predictable bets lambda_i in [0, 3/4 * 1/(1 + side*m)] (so 1 + lambda_i x_i >= 1/4),
    is a non-negative supermartingale whenever side * (E[d_i | past] - m) <= 0; by Ville's
    inequality P(sup_t K_t >= 1/a) <= a. This is testing by betting (Waudby-Smith & Ramdas,
    JRSS-B 2023, section 4, the bets of their aGRAPA rule:
    lambda_i = mean_{i-1} / (var_{i-1} + mean_{i-1}^2), clipped), which adapts to the small
    spread of paired differences where a bounded-range bound cannot: on paired Brier
    differences it decides with about half the rows of the empirical-Bernstein sequence.

    ``m`` may be an array broadcasting against the leading axes of ``d`` (many nulls at once).
    Returns the running maximum of log K over the new rows and the new state; chunked updates
    equal one batch update exactly.
    """
    d = np.asarray(d, dtype=float)
    m = np.asarray(m, dtype=float)[..., None]
    x = side * (d - m)
    x, m = np.broadcast_arrays(x, m)
    t = state.t + np.arange(1, x.shape[-1] + 1, dtype=float)
    sum_x = _cumsum(np.broadcast_to(state.sum_x, x.shape[:-1]), x)
    mean = sum_x / (t + 1)  # shrunk towards 0: no bet before any evidence
    mean_prev = _shift(np.broadcast_to(state.sum_x, x.shape[:-1]) / (state.t + 1), mean)
    sum_sq = _cumsum(np.broadcast_to(state.sum_sq, x.shape[:-1]), (x - mean) ** 2)
    var_prev = _shift(
        (0.25 + np.broadcast_to(state.sum_sq, x.shape[:-1])) / (state.t + 1),
        (0.25 + sum_sq) / (t + 1),
    )
    cap = _BET_CAP / (1 + side * m)  # x >= -(1 + side*m): the loss of one row is bounded
    lam = np.clip(mean_prev / (var_prev + mean_prev**2), 0, cap)
    log_wealth = _cumsum(np.broadcast_to(state.log_wealth, x.shape[:-1]), np.log1p(lam * x))
    running = np.maximum.accumulate(
        np.concatenate(
            [np.broadcast_to(state.max_log_wealth, x.shape[:-1])[..., None], log_wealth], -1
        ),
        axis=-1,
    )[..., 1:]
    new = BetState(
        int(t[-1]) if len(t) else state.t,
        sum_x[..., -1],
        sum_sq[..., -1],
        log_wealth[..., -1],
        running[..., -1],
    )
    return running, new


def bet_max_log_wealth(d: np.ndarray, m: object, side: int) -> np.ndarray:
    """Running max of log-wealth at every t (batch form of :func:`bet_update`)."""
    d = np.asarray(d, dtype=float)
    shape = np.broadcast_shapes(d.shape[:-1], np.shape(m))
    running, _ = bet_update(d, m, side, BetState.initial(shape))
    return running


# Nulls whose rejection bounds the reported interval: fine near 0, coarse beyond.
_GRID = np.unique(np.concatenate([np.linspace(-0.95, 0.95, 39), np.linspace(-0.05, 0.05, 81)]))


def _bounds(d: np.ndarray, alpha: float, margin: float) -> tuple[float, float]:
    """The (1 - alpha) confidence sequence's bounds after all of ``d``: lower = the largest m
    with every null "mean <= m'" (m' <= m) rejected at alpha/2 so far, upper likewise from
    above. Bracketed on a grid of nulls (fine near 0), then bisected to 1e-6, rounded outward.
    """
    if d.size == 0:
        return -1.0, 1.0
    threshold = math.log(2 / alpha)
    grid = np.unique(np.concatenate([_GRID, [-margin, 0.0]]))

    def rejected(m: np.ndarray, side: int) -> np.ndarray:
        rows = np.broadcast_to(d, (len(m), d.size))
        return bet_max_log_wealth(rows, m, side)[:, -1] >= threshold

    below = rejected(grid, +1)  # "mean <= m" rejected: a prefix of the grid
    above = rejected(grid, -1)  # "mean >= m" rejected: a suffix
    k_low = len(grid) if below.all() else int(np.argmin(below))
    k_high = len(grid) if above.all() else int(np.argmin(above[::-1]))
    lower = -1.0 if k_low == 0 else _bisect(rejected, +1, grid[k_low - 1], _next(grid, k_low, 1.0))
    upper = (
        1.0
        if k_high == 0
        else _bisect(
            rejected, -1, grid[len(grid) - k_high], _next(grid, len(grid) - k_high - 1, -1.0)
        )
    )
    return lower, upper


def _next(grid: np.ndarray, i: int, default: float) -> float:
    return float(grid[i]) if 0 <= i < len(grid) else default


def _bisect(
    rejected: Callable[[np.ndarray, int], np.ndarray], side: int, inside: float, outside: float
) -> float:
    """The boundary between a rejected null ``inside`` and an accepted one ``outside``; the
    rejected end is returned (the reported bound never claims more than the tests show)."""
    for _ in range(40):
        if abs(outside - inside) < 1e-6:
            break
        middle = (inside + outside) / 2
        if rejected(np.array([middle]), side)[0]:
            inside = middle
        else:
            outside = middle
    return float(inside)


def decision_codes(
    n: np.ndarray | int,
    promote_log_wealth: np.ndarray,
    rollback_log_wealth: np.ndarray,
    policy: SequentialPolicy,
) -> np.ndarray:
    """Vectorised decision: -1 rollback, +1 promote, 0 hold, from the two tests' running max
    log-wealth: rollback once 'canary not worse' (mean d >= 0) is rejected at alpha/2,
    promote once 'canary worse than the margin' (mean d <= -margin) is.

    Rollback wins if both (confidently worse, even if by less than the margin); everything is
    hold before ``policy.min_labelled`` rows.
    """
    threshold = math.log(2 / policy.alpha)
    enough = np.asarray(n) >= max(policy.min_labelled, 1)
    rollback = enough & (np.asarray(rollback_log_wealth) >= threshold)
    promote = enough & ~rollback & (np.asarray(promote_log_wealth) >= threshold)
    return promote.astype(int) - rollback.astype(int)


def decide(
    p_stable: object, p_canary: object, y: object, policy: SequentialPolicy | None = None
) -> SequentialDecision:
    """The decision after all rows given (batch form of :class:`PairedSequentialTest`)."""
    test = PairedSequentialTest(policy)
    return test.update(p_stable, p_canary, y)


class PairedSequentialTest:
    """Streaming form: feed labelled batches with :meth:`update`; look after each one.

    Two tests by betting on the paired Brier differences d (positive: canary better), each at
    alpha/2: H0 'mean d >= 0' (rejected: rollback) and H0 'mean d <= -margin' (rejected:
    promote). Their wealth may be read after every row, so the error rates hold however often
    (and whenever) :meth:`decision` is consulted: P(rollback | canary not worse) <= alpha/2 and
    P(promote | canary worse than the margin) <= alpha/2. Results equal :func:`decide` on
    the concatenated rows exactly.
    """

    def __init__(self, policy: SequentialPolicy | None = None) -> None:
        self.policy = policy or SequentialPolicy()
        self._promote = BetState.initial()
        self._rollback = BetState.initial()
        self._d: list[np.ndarray] = []
        self._sum_d = 0.0

    @property
    def n(self) -> int:
        return self._promote.t

    def update(self, p_stable: object, p_canary: object, y: object) -> SequentialDecision:
        """Add one batch of shadow-scored labelled rows; return the decision after it."""
        d = brier_differences(p_stable, p_canary, y)
        if d.size:
            _, self._promote = bet_update(d, -self.policy.margin, +1, self._promote)
            _, self._rollback = bet_update(d, 0.0, -1, self._rollback)
            self._sum_d = float(_cumsum(np.float64(self._sum_d), d)[-1])
            self._d.append(d)
        return self.decision()

    def decision(self) -> SequentialDecision:
        policy, n = self.policy, self.n
        mean = self._sum_d / n if n else None
        d = np.concatenate(self._d) if self._d else np.empty(0)
        lower, upper = _bounds(d, policy.alpha, policy.margin) if policy.bounds else (-1.0, 1.0)
        promote_w = float(self._promote.max_log_wealth)
        rollback_w = float(self._rollback.max_log_wealth)
        code = int(decision_codes(n, np.float64(promote_w), np.float64(rollback_w), policy))
        evidence = (
            f"CS [{lower:.5f}, {upper:.5f}] at n={n}; e-values: canary worse "
            f"{_e(rollback_w)}, canary within the margin {_e(promote_w)} "
            f"(act at {2 / policy.alpha:g})"
        )
        if code == -1:
            action, reason = "rollback", f"{evidence}: canary confidently worse"
        elif code == 1:
            action = "promote"
            reason = f"{evidence}: canary not worse than the margin {policy.margin:g}"
        elif n < policy.min_labelled:
            action, reason = "hold", f"{n} labelled rows < min_labelled={policy.min_labelled}"
        else:
            action, reason = "hold", f"{evidence}: not yet decided"
        return SequentialDecision(
            action=action,
            n=n,
            mean=mean,
            lower=lower,
            upper=upper,
            margin=policy.margin,
            reason=reason,
            e_rollback=_finite_exp(rollback_w),
            e_promote=_finite_exp(promote_w),
        )


def _finite_exp(log_value: float) -> float:
    return float(math.exp(min(log_value, 700))) if math.isfinite(log_value) else 0.0


def _e(log_value: float) -> str:
    return f"{_finite_exp(log_value):.3g}"


# -- margin calibration --------------------------------------------------------------------


def binormal_mu(auc: float) -> float:
    """Separation mu of N(0,1) negatives vs N(mu,1) positives with ROC-AUC ``auc``."""
    return math.sqrt(2) * float(norm.ppf(auc))


def calibrated_probability(score: np.ndarray, mu: float, prevalence: float) -> np.ndarray:
    """Exact posterior P(y=1 | score) for binormal scores: perfectly calibrated."""
    logit_prior = math.log(prevalence / (1 - prevalence))
    return expit(logit_prior + mu * np.asarray(score) - mu * mu / 2)


def brier_gap_for_auc(
    stable_auc: float = 0.76,
    canary_auc: float = 0.75,
    prevalence: float = 0.2,
    n: int = 2_000_000,
    seed: int = 0,
) -> float:
    """E[d] = mean Brier(stable) - Brier(canary) of calibrated binormal models, by simulation.

    Common random numbers (same labels and noise for both) keep the Monte Carlo error
    small; the mean itself depends only on the two marginal models.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(float)
    z = rng.standard_normal(n)
    brier = []
    for auc in (stable_auc, canary_auc):
        mu = binormal_mu(auc)
        p = calibrated_probability(mu * y + z, mu, prevalence)
        brier.append(np.mean((p - y) ** 2))
    return float(brier[0] - brier[1])
