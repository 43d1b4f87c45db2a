"""Tracking the deployed model's risk: an alarm on harmful shifts only, valid at every look.

Podkopaev & Ramdas, "Tracking the risk of a deployed model and detecting harmful
distribution shifts" (ICLR 2022). A shift of the inputs or of the labels matters only if it
raises the model's risk, so the test is on the risk itself, with the labels as they arrive:

- the per-row loss is bounded in [0, 1]: the Brier score ``(p - y)^2`` by default, or the
  0/1 misclassification ``1[(p >= threshold) != y]``;
- source: a one-sided (1 - alpha_S) upper bound ``U_S`` on the champion's risk from its
  holdout (a finite sample of the source distribution it was judged on): the last value of
  the PrPl-EB confidence sequence (:func:`e2eai.serving.sequential.confidence_sequence`) on
  the holdout's losses, valid at its sample size because it is valid at every one;
- target: a one-sided (1 - alpha_T) lower confidence *sequence* ``L_T(t)`` on the running
  mean risk of the labelled production rows the champion answered since it was deployed,
  in the order their labels were read (:func:`e2eai.serving.sequential.pr_pl_eb_update`,
  streamed);
- alarm at the first t with ``L_T(t) > U_S + eps_tol``.

H0 is "no harmful shift": every production row's conditional risk is at most
``R_S + eps_tol``. The PrPl-EB bound rests on a non-negative supermartingale under any null
value at or above each row's conditional mean, so under H0 the probability of *ever*
alarming, however often the bound is read, is at most ``alpha_T + alpha_S`` (the source
bound fails with chance alpha_S, the sequence with chance alpha_T; Ville's inequality).
The paper splits the level the same way; here ``alpha_S = alpha_T = alpha / 2``. A shift
that leaves the risk where it was (the seasons moving the inputs, traffic moving to easy
rows) does not alarm, however large. Under a risk that changes, the sequence's centre is
the bet-weighted mean, and the bets shrink like 1/sqrt(t log t): early rows weigh more
than late ones, so a shift long after deployment shows later than the plain running mean
says.

A two-sided PrPl-EB sequence at level a spends ``a / 2`` on each side, so a one-sided
bound at level d is its side at ``a = 2 d``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from e2eai.serving.sequential import CSState, confidence_sequence, pr_pl_eb_update

Loss = Literal["brier", "misclassification"]


def row_losses(
    labels: object, probabilities: object, loss: Loss = "brier", threshold: float = 0.5
) -> np.ndarray:
    """Per-row loss in [0, 1] of ``probabilities`` against 0/1 ``labels`` (both [N]).

    Raises ValueError naming the argument on probabilities outside [0, 1] (or non-finite),
    labels other than 0/1, mismatched lengths and an unknown loss.
    """
    p = np.asarray(probabilities, dtype=float).ravel()
    y = np.asarray(labels, dtype=float).ravel()
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be finite and in [0, 1]")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1 (a missing label is no label: leave it out)")
    if len(p) != len(y):
        raise ValueError(f"labels and probabilities differ in length ({len(y)} vs {len(p)})")
    if loss == "brier":
        return (p - y) ** 2
    if loss == "misclassification":
        return ((p >= threshold) != (y == 1)).astype(float)
    raise ValueError(f"loss must be 'brier' or 'misclassification', not {loss!r}")


class SourceRisk(BaseModel):
    """The champion's risk on its holdout: mean and one-sided upper bound at level ``alpha``."""

    model_config = ConfigDict(frozen=True)

    loss: Loss
    n: int
    mean: float
    upper: float
    alpha: float


def source_risk(
    labels: object,
    probabilities: object,
    alpha: float,
    loss: Loss = "brier",
    threshold: float = 0.5,
) -> SourceRisk:
    """Upper (1 - alpha) bound on the mean loss of the holdout's rows (in their order).

    Raises ValueError naming ``labels`` when there are none: a risk needs outcomes.
    """
    losses = row_losses(labels, probabilities, loss, threshold)
    if not losses.size:
        raise ValueError("labels: the source has no labelled rows to bound its risk with")
    upper = float(source_upper_bounds(losses, alpha))
    return SourceRisk(loss=loss, n=losses.size, mean=float(losses.mean()), upper=upper, alpha=alpha)


def source_upper_bounds(losses: np.ndarray, alpha: float) -> np.ndarray:
    """Upper (1 - alpha) bound on the mean of ``losses`` (last axis) after all of them.

    Leading axes are independent samples (vectorised simulation).
    """
    _, upper = confidence_sequence(np.asarray(losses, dtype=float), 2 * alpha)
    return upper[..., -1]


def target_lower_bounds(losses: np.ndarray, alpha: float) -> np.ndarray:
    """The lower (1 - alpha) confidence sequence on the running mean of ``losses`` at every t.

    Last axis = time; leading axes are independent streams (vectorised simulation).
    """
    lower, _ = confidence_sequence(np.asarray(losses, dtype=float), 2 * alpha)
    return lower


def detect_harmful_shift(
    source_losses: np.ndarray, target_losses: np.ndarray, eps_tol: float, alpha: float
) -> np.ndarray:
    """1-based row of the first alarm on each target stream (0: none), the level split as
    alpha/2 for the source bound and alpha/2 for the target sequence.

    Last axis = rows; leading axes are independent (source, target) pairs. The batch form of
    :class:`RiskTracker`: every row is a look.
    """
    upper = source_upper_bounds(source_losses, alpha / 2)
    return first_alarm(target_lower_bounds(target_losses, alpha / 2), upper + eps_tol)


def first_alarm(lower: np.ndarray, threshold: object) -> np.ndarray:
    """1-based row of the first ``lower > threshold`` along the last axis; 0 where never.

    ``threshold`` broadcasts against the leading axes (one per stream, or one for all).
    """
    crossed = np.asarray(lower) > np.asarray(threshold, dtype=float)[..., None]
    return np.where(crossed.any(axis=-1), crossed.argmax(axis=-1) + 1, 0)


class RiskStatus(BaseModel):
    """Where the tracked risk stands after the rows seen so far; every figure of the test."""

    model_config = ConfigDict(frozen=True)

    loss: Loss
    n: int  # labelled production rows so far
    mean: float | None  # their running mean loss
    lower: float  # L_T: lower confidence sequence (0 before any row)
    source_n: int
    source_mean: float
    source_upper: float  # U_S
    eps_tol: float
    threshold: float  # U_S + eps_tol
    alpha_source: float
    alpha_target: float
    alarm: bool
    first_alarm_row: int | None  # 1-based, among the production rows
    first_alarm_at: datetime | None  # the event time of that row, when it was given


class RiskTracker:
    """Streaming: feed each batch of labelled production rows to :meth:`update` and read the
    status after any of them; the false-alarm rate holds however often it is read.

    Chunked updates equal one update with every row exactly (the sums run left to right),
    so the tracker may be saved (:meth:`to_dict`) between monitoring passes.
    """

    def __init__(
        self,
        source: SourceRisk,
        eps_tol: float,
        alpha_target: float,
        threshold: float = 0.5,
        state: CSState | None = None,
        first_alarm_row: int | None = None,
        first_alarm_at: datetime | None = None,
    ) -> None:
        if eps_tol < 0:
            raise ValueError(f"eps_tol must be >= 0, not {eps_tol}")
        if not 0 < alpha_target < 1:
            raise ValueError(f"alpha_target must be in (0, 1), not {alpha_target}")
        self.source = source
        self.eps_tol = eps_tol
        self.alpha_target = alpha_target
        self.threshold = threshold
        self.state = state or CSState.initial()
        self.first_alarm_row = first_alarm_row
        self.first_alarm_at = first_alarm_at

    @property
    def alarm_level(self) -> float:
        return self.source.upper + self.eps_tol

    def update(
        self,
        labels: object,
        probabilities: object,
        event_times: list[datetime] | None = None,
    ) -> RiskStatus:
        """Add one batch of labelled rows (in arrival order); return the status after it."""
        losses = row_losses(labels, probabilities, self.source.loss, self.threshold)
        if event_times is not None and len(event_times) != losses.size:
            raise ValueError(
                f"event_times and labels differ in length ({len(event_times)} vs {losses.size})"
            )
        if losses.size:
            before = self.state.t
            lower, _, self.state = pr_pl_eb_update(losses, 2 * self.alpha_target, self.state)
            row = int(first_alarm(lower, self.alarm_level))
            if self.first_alarm_row is None and row:
                self.first_alarm_row = before + row
                self.first_alarm_at = None if event_times is None else event_times[row - 1]
        return self.status()

    def status(self) -> RiskStatus:
        n, source = self.state.t, self.source
        lower = float(self.state.lower)
        return RiskStatus(
            loss=source.loss,
            n=n,
            mean=float(self.state.sum_x) / n if n else None,
            lower=lower,
            source_n=source.n,
            source_mean=source.mean,
            source_upper=source.upper,
            eps_tol=self.eps_tol,
            threshold=self.alarm_level,
            alpha_source=source.alpha,
            alpha_target=self.alpha_target,
            alarm=lower > self.alarm_level,
            first_alarm_row=self.first_alarm_row,
            first_alarm_at=self.first_alarm_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (floats round-trip exactly through JSON)."""
        s, at = self.state, self.first_alarm_at
        return {
            "source": self.source.model_dump(),
            "eps_tol": self.eps_tol,
            "alpha_target": self.alpha_target,
            "threshold": self.threshold,
            "state": {
                "t": s.t,
                **{
                    name: float(getattr(s, name))
                    for name in ("sum_x", "sum_sq", "sum_lam", "sum_lam_x", "sum_v_psi")
                },
                "lower": float(s.lower),
                "upper": float(s.upper),
            },
            "first_alarm_row": self.first_alarm_row,
            "first_alarm_at": None if at is None else at.isoformat(),
        }

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> RiskTracker:
        state = saved["state"]
        at = saved.get("first_alarm_at")
        return cls(
            SourceRisk.model_validate(saved["source"]),
            eps_tol=saved["eps_tol"],
            alpha_target=saved["alpha_target"],
            threshold=saved["threshold"],
            state=CSState(
                int(state["t"]),
                np.asarray(float(state["sum_x"])),
                np.asarray(float(state["sum_sq"])),
                np.asarray(float(state["sum_lam"])),
                np.asarray(float(state["sum_lam_x"])),
                np.asarray(float(state["sum_v_psi"])),
                np.asarray(float(state["lower"])),
                np.asarray(float(state["upper"])),
            ),
            first_alarm_row=saved.get("first_alarm_row"),
            first_alarm_at=None if at is None else datetime.fromisoformat(at),
        )
