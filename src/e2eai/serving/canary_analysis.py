"""Automated canary analysis: statistical comparison of canary against stable, then a decision.

Checks (each one-sided: "is the canary worse?"), at a Bonferroni-corrected level:

- error rate: Fisher's exact test on (errors, successes) of the two slots;
- latency: Mann-Whitney U on per-request latencies, counted as a regression only when the
  canary's p95 is also materially worse (``latency_p95_tolerance`` and an absolute floor) —
  with thousands of samples a 2 % slowdown is "significant" but harmless;
- once feedback labels exist: ROC-AUC (difference of two independent AUCs with
  Hanley–McNeil standard errors, z-test) and accuracy (two-proportion z-test).

Any significant regression → rollback. All required checks with their minimum sample sizes
and none failing → next step of the plan (10 % → 50 % → 100 % = promote). Otherwise hold.
Every decision is a :class:`CanaryDecision` with its evidence, appended to a JSON-lines log.

Two analyses judge quality (``CanaryPolicy.analysis``):

- ``sequential`` (the default): the router shadow-scores every request on both models, so
  each labelled row gives a paired Brier difference; a confidence sequence on their mean
  (:mod:`e2eai.serving.sequential`, at ``alpha / 2``) rolls back when the canary is
  confidently worse and passes when it is confidently not worse than ``sequential_margin``
  (0.01 ROC-AUC's equivalent). Its error rates hold at any number of looks; the health checks
  keep ``alpha / 4`` each. ``e2eai canary simulate`` measures both analyses.
- ``fixed``: the two slots' labelled rows as independent samples (AUC z-test and accuracy at
  ``alpha / 4`` each): fixed-sample tests, re-run at every look, so their error rates grow
  with the number of looks (an identical model rolled back 8 % of the time at a 5 % level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from e2eai.serving.sequential import DEFAULT_MARGIN, PairedSequentialTest, SequentialPolicy

if TYPE_CHECKING:
    from e2eai.config import Settings

Action = Literal["hold", "step", "promote", "rollback"]
Verdict = Literal["pass", "fail", "insufficient"]
Analysis = Literal["sequential", "fixed"]
Paired = Sequence[tuple[float, float, int]]  # (p_stable, p_canary, label) of one row


class CanaryPolicy(BaseModel):
    """How much evidence a decision needs."""

    model_config = ConfigDict(frozen=True)

    steps: tuple[int, ...] = (10, 50, 100)
    alpha: float = Field(0.05, gt=0, lt=1, description="Family-wise error level of the checks.")
    min_requests: int = Field(200, description="Per slot, before error rate/latency count.")
    min_labelled: int = Field(200, description="Per slot, before AUC/accuracy count.")
    min_class_count: int = Field(20, description="Positives and negatives needed for AUC.")
    require_labels: bool = Field(
        False, description="Hold until the labelled checks have enough samples."
    )
    latency_p95_tolerance: float = Field(0.25, description="Allowed relative p95 slowdown.")
    latency_floor_ms: float = Field(2.0, description="p95 differences below this are noise.")
    auc_margin: float = Field(0.0, description="Canary may trail stable's AUC by this much.")
    auc_noninferiority_margin: float = Field(
        0.05, description="A pass needs the AUC difference's lower bound above -this."
    )
    decision_threshold: float = 0.5
    analysis: Analysis = Field(
        "sequential",
        description="sequential: anytime-valid paired comparison of shadow-scored rows; "
        "fixed: independent-sample tests re-run at every look.",
    )
    report_bounds: bool = Field(
        True,
        description="Sequential: report the confidence sequence's bounds as evidence (the "
        "decision never reads them; simulations skip their cost).",
    )
    sequential_margin: float = Field(
        DEFAULT_MARGIN,
        ge=0,
        description="Sequential: a pass needs the canary's mean Brier score confidently "
        "within this of stable's (2.05e-3 is 0.01 ROC-AUC at a 20 % positive rate).",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> CanaryPolicy:
        serving = settings.serving
        return cls(
            steps=serving.canary_steps,
            alpha=serving.canary_alpha,
            min_requests=serving.canary_min_requests,
            min_labelled=serving.canary_min_labelled,
            require_labels=serving.canary_require_labels,
            latency_floor_ms=serving.canary_latency_floor_ms,
            auc_noninferiority_margin=serving.canary_auc_noninferiority_margin,
            decision_threshold=settings.gates.decision_threshold,
            analysis=serving.canary_analysis,
            sequential_margin=serving.canary_sequential_margin,
        )


class CheckEvidence(BaseModel):
    """One statistical comparison: the numbers behind a verdict."""

    model_config = ConfigDict(frozen=True)

    metric: str
    test: str
    stable: float | None
    canary: float | None
    n_stable: int
    n_canary: int
    statistic: float | None = None
    p_value: float | None = None
    alpha: float
    verdict: Verdict
    note: str = ""
    lower: float | None = None  # confidence bounds of (canary - stable), where the test has them
    upper: float | None = None
    margin: float | None = None  # the non-inferiority margin the bounds were read against


class CanaryDecision(BaseModel):
    """A rollout decision with its evidence."""

    model_config = ConfigDict(frozen=True)

    action: Action
    stable_version: str
    canary_version: str
    weight_before: int
    weight_after: int
    reason: str
    evidence: tuple[CheckEvidence, ...]
    decided_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    applied: bool = False


class SlotSamples(BaseModel):
    """What the router observed for one slot (see ``Router.handle_samples``)."""

    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    latencies_ms: list[float] = Field(default_factory=list)
    scored: list[tuple[float, int]] = Field(default_factory=list)


# -- the tests -------------------------------------------------------------------------------


def error_rate_check(
    stable: SlotSamples, canary: SlotSamples, policy: CanaryPolicy, alpha: float
) -> CheckEvidence:
    from scipy.stats import fisher_exact

    rate_s = stable.errors / stable.requests if stable.requests else None
    rate_c = canary.errors / canary.requests if canary.requests else None
    base = dict(
        metric="error_rate",
        test="Fisher exact, one-sided (canary > stable)",
        stable=rate_s,
        canary=rate_c,
        n_stable=stable.requests,
        n_canary=canary.requests,
        alpha=alpha,
    )
    if min(stable.requests, canary.requests) < policy.min_requests:
        return CheckEvidence(
            **base, verdict="insufficient", note=f"needs {policy.min_requests} requests per slot"
        )
    table = [
        [canary.errors, canary.requests - canary.errors],
        [stable.errors, stable.requests - stable.errors],
    ]
    statistic, p_value = fisher_exact(table, alternative="greater")
    return CheckEvidence(
        **base,
        statistic=_finite(statistic),
        p_value=float(p_value),
        verdict="fail" if p_value < alpha else "pass",
    )


def latency_check(
    stable: SlotSamples, canary: SlotSamples, policy: CanaryPolicy, alpha: float
) -> CheckEvidence:
    from scipy.stats import mannwhitneyu

    n_s, n_c = len(stable.latencies_ms), len(canary.latencies_ms)
    p95_s = float(np.percentile(stable.latencies_ms, 95)) if n_s else None
    p95_c = float(np.percentile(canary.latencies_ms, 95)) if n_c else None
    base = dict(
        metric="latency_p95_ms",
        test="Mann-Whitney U, one-sided (canary slower)",
        stable=p95_s,
        canary=p95_c,
        n_stable=n_s,
        n_canary=n_c,
        alpha=alpha,
    )
    if min(n_s, n_c) < policy.min_requests:
        return CheckEvidence(
            **base, verdict="insufficient", note=f"needs {policy.min_requests} latencies per slot"
        )
    statistic, p_value = mannwhitneyu(
        canary.latencies_ms, stable.latencies_ms, alternative="greater"
    )
    assert p95_s is not None and p95_c is not None
    material = p95_c > p95_s * (1 + policy.latency_p95_tolerance) and (
        p95_c - p95_s > policy.latency_floor_ms
    )
    failed = bool(p_value < alpha and material)
    note = "" if material or p_value >= alpha else "significant but within tolerance"
    return CheckEvidence(
        **base,
        statistic=float(statistic),
        p_value=float(p_value),
        verdict="fail" if failed else "pass",
        note=note,
    )


def auc_with_se(scored: Sequence[tuple[float, int]]) -> tuple[float, float, int, int]:
    """ROC-AUC (Mann-Whitney form) and its Hanley–McNeil (1982) standard error."""
    from scipy.stats import rankdata

    scores, labels = _columns(scored)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    ranks = rankdata(scores)
    auc = (ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)
    ) / (n_pos * n_neg)
    return float(auc), math.sqrt(max(variance, 1e-12)), n_pos, n_neg


def auc_check(
    stable: SlotSamples, canary: SlotSamples, policy: CanaryPolicy, alpha: float
) -> CheckEvidence:
    from scipy.stats import norm

    n_s, n_c = len(stable.scored), len(canary.scored)
    base = dict(
        metric="roc_auc",
        test="z-test on independent AUCs (Hanley-McNeil SE)",
        n_stable=n_s,
        n_canary=n_c,
        alpha=alpha,
    )
    classes_ok = all(
        min(int(y.sum()), len(y) - int(y.sum())) >= policy.min_class_count
        for y in (_columns(s.scored)[1] for s in (stable, canary))
    )
    if min(n_s, n_c) < policy.min_labelled or not classes_ok:
        return CheckEvidence(
            **base,
            stable=None,
            canary=None,
            verdict="insufficient",
            note=f"needs {policy.min_labelled} labelled rows and "
            f"{policy.min_class_count} of each class per slot",
        )
    auc_s, se_s, _, _ = auc_with_se(stable.scored)
    auc_c, se_c, _, _ = auc_with_se(canary.scored)
    se = math.sqrt(se_s**2 + se_c**2)
    z = (auc_c - auc_s + policy.auc_margin) / se
    p_value = float(norm.cdf(z))  # small when the canary's AUC is clearly lower
    # Absence of evidence of harm is not evidence of no harm: a pass needs the one-sided
    # lower confidence bound of (canary - stable) above -non_inferiority_margin.
    lower = auc_c - auc_s - float(norm.ppf(1 - alpha)) * se
    if p_value < alpha:
        verdict, note = "fail", ""
    elif lower >= -policy.auc_noninferiority_margin:
        verdict, note = "pass", f"non-inferior: lower bound {lower:+.4f}"
    else:
        verdict = "insufficient"
        note = (
            f"not yet shown non-inferior: lower bound {lower:+.4f} < "
            f"-{policy.auc_noninferiority_margin}"
        )
    return CheckEvidence(
        **base,
        stable=auc_s,
        canary=auc_c,
        statistic=z,
        p_value=p_value,
        verdict=verdict,
        note=note,
    )


def accuracy_check(
    stable: SlotSamples, canary: SlotSamples, policy: CanaryPolicy, alpha: float
) -> CheckEvidence:
    from scipy.stats import norm

    def correct(samples: SlotSamples) -> int:
        p, y = _columns(samples.scored)
        return int(np.sum((p >= policy.decision_threshold) == (y == 1)))

    n_s, n_c = len(stable.scored), len(canary.scored)
    base = dict(
        metric="accuracy",
        test="two-proportion z-test, one-sided (canary lower)",
        n_stable=n_s,
        n_canary=n_c,
        alpha=alpha,
    )
    if min(n_s, n_c) < policy.min_labelled:
        return CheckEvidence(
            **base,
            stable=None,
            canary=None,
            verdict="insufficient",
            note=f"needs {policy.min_labelled} labelled rows per slot",
        )
    k_s, k_c = correct(stable), correct(canary)
    acc_s, acc_c = k_s / n_s, k_c / n_c
    pooled = (k_s + k_c) / (n_s + n_c)
    se = math.sqrt(max(pooled * (1 - pooled) * (1 / n_s + 1 / n_c), 1e-12))
    z = (acc_c - acc_s) / se
    p_value = float(norm.cdf(z))
    return CheckEvidence(
        **base,
        stable=acc_s,
        canary=acc_c,
        statistic=z,
        p_value=p_value,
        verdict="fail" if p_value < alpha else "pass",
    )


def paired_check(paired: Paired | None, policy: CanaryPolicy, alpha: float) -> CheckEvidence:
    """Paired Brier comparison of shadow-scored rows by confidence sequence (anytime-valid).

    ``lower``/``upper`` bound the mean of ``brier(stable) - brier(canary)``: positive means
    the canary is better. Fail when ``upper < 0``, pass when ``lower > -sequential_margin``.
    """
    rows = np.asarray([] if paired is None else paired, dtype=float).reshape(-1, 3)
    base = dict(
        metric="brier_paired",
        test="PrPl-EB confidence sequence on paired Brier differences (shadow-scored)",
        n_stable=len(rows),
        n_canary=len(rows),
        alpha=alpha,
    )
    if not len(rows):
        return CheckEvidence(
            **base,
            stable=None,
            canary=None,
            verdict="insufficient",
            note="no shadow-scored labelled rows yet (serving.canary_shadow on?)",
        )
    test = PairedSequentialTest(
        SequentialPolicy(
            alpha=alpha,
            margin=policy.sequential_margin,
            min_labelled=policy.min_labelled,
            bounds=policy.report_bounds,
        )
    )
    decision = test.update(rows[:, 0], rows[:, 1], rows[:, 2])
    verdict: Verdict = {"rollback": "fail", "promote": "pass", "hold": "insufficient"}[
        decision.action
    ]
    return CheckEvidence(
        **base,
        stable=float(np.mean((rows[:, 0] - rows[:, 2]) ** 2)),
        canary=float(np.mean((rows[:, 1] - rows[:, 2]) ** 2)),
        statistic=decision.mean,
        verdict=verdict,
        note=decision.reason,
        lower=decision.lower,
        upper=decision.upper,
        margin=policy.sequential_margin,
    )


def _columns(scored: Sequence[tuple[float, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) of ``(probability, label)`` pairs as arrays."""
    array = np.asarray(scored, dtype=float).reshape(-1, 2)
    return array[:, 0], array[:, 1]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# -- the decision ----------------------------------------------------------------------------


def next_weight(current: int, steps: Sequence[int]) -> int:
    """The next step of the plan above ``current`` (100 when none is left)."""
    return next((s for s in sorted(steps) if s > current), 100)


def decide(
    stable: SlotSamples,
    canary: SlotSamples,
    *,
    policy: CanaryPolicy,
    stable_version: str,
    canary_version: str,
    canary_weight: int,
    paired: Paired | None = None,
) -> CanaryDecision:
    """Compare the slots and choose hold / step / promote / rollback.

    ``paired`` holds the shadow-scored labelled rows ``(p_stable, p_canary, label)`` the
    sequential analysis reads (the fixed one ignores them).
    """
    alpha = policy.alpha / 4  # Bonferroni: a quarter to each health check, the rest to quality
    health = (
        error_rate_check(stable, canary, policy, alpha),
        latency_check(stable, canary, policy, alpha),
    )
    quality: tuple[CheckEvidence, ...]
    if policy.analysis == "sequential":
        quality = (paired_check(paired, policy, 2 * alpha),)
    else:
        quality = (
            auc_check(stable, canary, policy, alpha),
            accuracy_check(stable, canary, policy, alpha),
        )
    evidence = health + quality
    common = dict(
        stable_version=stable_version,
        canary_version=canary_version,
        weight_before=canary_weight,
        evidence=evidence,
    )
    failed = [e for e in evidence if e.verdict == "fail"]
    if failed:
        reasons = "; ".join(
            f"{e.metric} worse (stable {_fmt(e.stable)}, canary {_fmt(e.canary)}, "
            + (f"p={e.p_value:.2g})" if e.p_value is not None else f"{e.note})")
            for e in failed
        )
        return CanaryDecision(action="rollback", weight_after=0, reason=reasons, **common)
    required = {"error_rate", "latency_p95_ms"}
    if policy.require_labels:
        required |= {e.metric for e in quality}
    missing = [e for e in evidence if e.metric in required and e.verdict == "insufficient"]
    if missing:
        return CanaryDecision(
            action="hold",
            weight_after=canary_weight,
            reason="not enough samples yet: "
            + ", ".join(f"{e.metric} ({e.note})" for e in missing),
            **common,
        )
    target = next_weight(canary_weight, policy.steps)
    passed = ", ".join(e.metric for e in evidence if e.verdict == "pass")
    action: Action = "promote" if target >= 100 else "step"
    return CanaryDecision(
        action=action, weight_after=target, reason=f"no regression ({passed})", **common
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


# -- the decision log ------------------------------------------------------------------------


def record_decision(path: Path, decision: CanaryDecision) -> None:
    """Append one decision to the JSON-lines log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(decision.model_dump_json() + "\n")


def read_decisions(path: Path, limit: int | None = None) -> list[CanaryDecision]:
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if limit is not None:
        lines = lines[-limit:]
    return [CanaryDecision.model_validate_json(line) for line in lines]


def samples_from_router(payload: dict[str, Any]) -> tuple[SlotSamples, SlotSamples]:
    """(stable, canary) samples from the router's ``/router/samples`` answer."""
    return (
        SlotSamples.model_validate(payload.get("stable", {})),
        SlotSamples.model_validate(payload.get("canary", {})),
    )


def paired_from_router(payload: dict[str, Any]) -> list[tuple[float, float, int]]:
    """The shadow-scored labelled rows ``(p_stable, p_canary, label)`` of ``/router/samples``."""
    return [(float(a), float(b), int(y)) for a, b, y in payload.get("paired", [])]


def write_paired_rows(path: Path, paired: Paired) -> None:
    """Keep the paired rows an analysis read as an ``[N, 3]`` float64 array (``.npy``),
    replaced atomically: the evidence its decision can be re-derived from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        np.save(handle, np.asarray(paired, dtype=float).reshape(-1, 3))
    partial.replace(path)


def read_paired_rows(path: Path) -> np.ndarray:
    """The ``[N, 3]`` rows ``(p_stable, p_canary, label)`` kept by :func:`write_paired_rows`."""
    return np.load(path, allow_pickle=False)
