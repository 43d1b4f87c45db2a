"""Anytime-valid paired comparison of a canary against the stable model (shadow scoring).

Every labelled row is scored by both models, so the comparison is paired on the same rows:
``d_i = brier(p_stable_i, y_i) - brier(p_canary_i, y_i)`` (positive = canary better,
``d_i`` in [-1, 1]). The running mean of ``d`` gets a *confidence sequence* (CS): bounds that
hold at every sample size simultaneously with probability >= 1 - alpha, so the router may
look after every batch without inflating the error rate — unlike a fixed-sample test re-run
at each look.

No maintained wheel provides this (``confseq`` 0.0.11 is an alpha sdist needing a C++
build), so the predictable plug-in empirical-Bernstein CS ("PrPl-EB") is implemented here:
Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting",
JRSS-B 86(1), 2023, Theorem 2, eqs. (13)-(15).

Decision (:func:`decide`): rollback when the CS upper bound < 0 (canary confidently worse),
promote when the lower bound > -margin (confidently not worse than the non-inferiority
margin), otherwise hold; always hold before ``min_labelled`` rows.
"""

from __future__ import annotations

import math
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


# -- decisions -----------------------------------------------------------------------------


def decision_codes(
    n: np.ndarray | int, lower: np.ndarray, upper: np.ndarray, policy: SequentialPolicy
) -> np.ndarray:
    """Vectorised decision: -1 rollback (upper < 0), +1 promote (lower > -margin), 0 hold.

    Rollback wins if both hold (confidently worse, even if by less than the margin);
    everything is hold before ``policy.min_labelled`` rows.
    """
    enough = np.asarray(n) >= max(policy.min_labelled, 1)
    rollback = enough & (np.asarray(upper) < 0)
    promote = enough & ~rollback & (np.asarray(lower) > -policy.margin)
    return promote.astype(int) - rollback.astype(int)


def _decision(
    n: int, mean: float | None, lower: float, upper: float, policy: SequentialPolicy
) -> SequentialDecision:
    code = int(decision_codes(n, np.float64(lower), np.float64(upper), policy))
    bounds = f"CS [{lower:.5f}, {upper:.5f}] at n={n}"
    if code == -1:
        action, reason = "rollback", f"{bounds}: upper < 0, canary confidently worse"
    elif code == 1:
        action = "promote"
        reason = f"{bounds}: lower > -{policy.margin:g}, canary not worse than the margin"
    elif n < policy.min_labelled:
        action, reason = "hold", f"{n} labelled rows < min_labelled={policy.min_labelled}"
    else:
        action, reason = "hold", f"{bounds}: straddles 0 or -{policy.margin:g}"
    return SequentialDecision(
        action=action,
        n=n,
        mean=mean,
        lower=float(lower),
        upper=float(upper),
        margin=policy.margin,
        reason=reason,
    )


def decide(
    p_stable: object, p_canary: object, y: object, policy: SequentialPolicy | None = None
) -> SequentialDecision:
    """The decision after all rows given (batch form of :class:`PairedSequentialTest`)."""
    test = PairedSequentialTest(policy)
    return test.update(p_stable, p_canary, y)


class PairedSequentialTest:
    """Streaming form: feed labelled batches with :meth:`update`; look after each one.

    Because the bounds form a confidence sequence, the error rates hold however often (and
    whenever) :meth:`decision` is consulted. Results equal :func:`decide` on the
    concatenated rows exactly.
    """

    def __init__(self, policy: SequentialPolicy | None = None) -> None:
        self.policy = policy or SequentialPolicy()
        self._state = CSState.initial()
        self._sum_d = 0.0

    @property
    def n(self) -> int:
        return self._state.t

    def update(self, p_stable: object, p_canary: object, y: object) -> SequentialDecision:
        """Add one batch of shadow-scored labelled rows; return the decision after it."""
        d = brier_differences(p_stable, p_canary, y)
        _, _, self._state = pr_pl_eb_update((d + 1) / 2, self.policy.alpha, self._state)
        if d.size:
            self._sum_d = float(_cumsum(np.float64(self._sum_d), d)[-1])
        return self.decision()

    def decision(self) -> SequentialDecision:
        n = self.n
        mean = self._sum_d / n if n else None
        lower, upper = 2 * float(self._state.lower) - 1, 2 * float(self._state.upper) - 1
        return _decision(n, mean, lower, upper, self.policy)


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
