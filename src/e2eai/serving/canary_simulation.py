"""Simulated rollouts through the real canary decision function: error rates and sample sizes.

Each run is one rollout: requests arrive one row at a time, the router sends each to the
canary with the current weight (10 % → 50 % → 100 % as the analysis steps), every row's label
is fed back at once, and :func:`e2eai.serving.canary_analysis.decide` looks every
``look_every`` requests until it promotes or rolls back, or ``max_requests`` have gone by
(undecided). Both models score every request (shadow scoring), so the sequential analysis
sees every row paired while the fixed one sees each slot's rows as independent samples.

Models are binormal: a row's score is ``mu * y + z`` with ``mu = sqrt(2) Phi^-1(AUC)``
(negatives N(0, 1), positives N(mu, 1)), mapped to its exact posterior probability, so both
models are perfectly calibrated and differ only in ranking quality. The two models' noises
are correlated (``correlation``: two versions of one model trained on overlapping data
disagree far less than two independent models). Latencies of both slots come from one
log-normal and no request fails, so a rollback is a quality decision (or a health check's
false alarm).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from e2eai.serving.canary_analysis import Analysis, CanaryPolicy, SlotSamples, decide
from e2eai.serving.sequential import binormal_mu, calibrated_probability

Progress = Callable[[int], None]


class Scenario(BaseModel):
    """Two models' ROC-AUC: what the canary analysis should tell apart."""

    model_config = ConfigDict(frozen=True)

    name: str
    auc_stable: float = Field(gt=0.5, lt=1)
    auc_canary: float = Field(gt=0.5, lt=1)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(name="identical", auc_stable=0.76, auc_canary=0.76),
    Scenario(name="worse by 0.01", auc_stable=0.76, auc_canary=0.75),
    Scenario(name="worse by 0.03", auc_stable=0.76, auc_canary=0.73),
    Scenario(name="worse by 0.06", auc_stable=0.76, auc_canary=0.70),
    Scenario(name="better by 0.02", auc_stable=0.76, auc_canary=0.78),
)


class SimulationSettings(BaseModel):
    """The rollouts to simulate."""

    model_config = ConfigDict(frozen=True)

    runs: int = Field(200, ge=1)
    positive_rate: float = Field(0.2, gt=0, lt=1)
    steps: tuple[int, ...] = (10, 50, 100)
    look_every: int = Field(250, ge=1, description="Requests between two looks.")
    max_requests: int = Field(13_000, ge=1)
    correlation: float = Field(
        0.9, ge=0, le=1, description="Correlation of the two models' score noise."
    )
    latency_median_ms: float = Field(6.0, gt=0)
    latency_sigma: float = Field(0.3, ge=0, description="Log-normal shape of latencies.")
    seed: int = 0


class ScenarioResult(BaseModel):
    """How often one analysis promoted, rolled back or left undecided one scenario."""

    model_config = ConfigDict(frozen=True)

    name: str
    analysis: Analysis
    auc_stable: float
    auc_canary: float
    runs: int
    promote: float
    rollback: float
    undecided: float
    median_requests: float | None  # to a decision, over the decided runs
    promote_ci: tuple[float, float]  # exact (Clopper-Pearson) 95 % interval of promote
    rollback_ci: tuple[float, float]


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval for k successes in n trials."""
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - tail, k + 1, n - k))
    return low, high


def _run(
    scenario: Scenario,
    policy: CanaryPolicy,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> tuple[str, int]:
    """One rollout: (final action or "undecided", requests seen at the decision)."""
    n, prevalence = settings.max_requests, settings.positive_rate
    y = (rng.random(n) < prevalence).astype(int)
    shared = rng.standard_normal(n)
    rho = settings.correlation
    noise = [rho * shared + math.sqrt(1 - rho * rho) * rng.standard_normal(n) for _ in range(2)]
    p = []
    for auc, z in zip((scenario.auc_stable, scenario.auc_canary), noise, strict=True):
        mu = binormal_mu(auc)
        p.append(calibrated_probability(mu * y + z, mu, prevalence))
    p_stable, p_canary = p
    latency = settings.latency_median_ms * np.exp(settings.latency_sigma * rng.standard_normal(n))
    route = rng.random(n) * 100
    slots = {"stable": SlotSamples(), "canary": SlotSamples()}
    weight, seen = min(settings.steps), 0
    while seen < n:
        upto = min(seen + settings.look_every, n)
        to_canary = route[seen:upto] < weight
        for slot, mask, probs in (
            ("canary", to_canary, p_canary),
            ("stable", ~to_canary, p_stable),
        ):
            rows = np.arange(seen, upto)[mask]
            samples = slots[slot]
            samples.requests += len(rows)
            samples.latencies_ms.extend(latency[rows].tolist())
            samples.scored.extend(zip(probs[rows].tolist(), y[rows].tolist(), strict=True))
        seen = upto
        paired = np.column_stack([p_stable[:seen], p_canary[:seen], y[:seen]])
        decision = decide(
            slots["stable"],
            slots["canary"],
            policy=policy,
            stable_version="stable",
            canary_version="canary",
            canary_weight=weight,
            paired=paired,
        )
        if decision.action in {"promote", "rollback"}:
            return decision.action, seen
        weight = decision.weight_after
    return "undecided", seen


def simulate(
    scenario: Scenario,
    policy: CanaryPolicy,
    settings: SimulationSettings,
    progress: Progress | None = None,
) -> ScenarioResult:
    """``settings.runs`` rollouts of ``scenario`` under ``policy`` (seeded: reproducible)."""
    # One stream per scenario and run: the two analyses see the very same rollouts.
    seeds = np.random.SeedSequence([settings.seed, *(round(a * 1e4) for a in _aucs(scenario))])
    outcomes: list[tuple[str, int]] = []
    for child in seeds.spawn(settings.runs):
        outcomes.append(_run(scenario, policy, settings, np.random.default_rng(child)))
        if progress:
            progress(1)
    runs = len(outcomes)
    promoted = sum(action == "promote" for action, _ in outcomes)
    rolled = sum(action == "rollback" for action, _ in outcomes)
    decided = [seen for action, seen in outcomes if action != "undecided"]
    return ScenarioResult(
        name=scenario.name,
        analysis=policy.analysis,
        auc_stable=scenario.auc_stable,
        auc_canary=scenario.auc_canary,
        runs=runs,
        promote=promoted / runs,
        rollback=rolled / runs,
        undecided=(runs - promoted - rolled) / runs,
        median_requests=float(np.median(decided)) if decided else None,
        promote_ci=clopper_pearson(promoted, runs),
        rollback_ci=clopper_pearson(rolled, runs),
    )


def _aucs(scenario: Scenario) -> tuple[float, float]:
    return scenario.auc_stable, scenario.auc_canary


def simulate_all(
    base: CanaryPolicy,
    settings: SimulationSettings,
    scenarios: Sequence[Scenario] = SCENARIOS,
    analyses: Sequence[Analysis] = ("fixed", "sequential"),
    progress: Progress | None = None,
) -> list[ScenarioResult]:
    """Every scenario under every analysis, side by side (``require_labels`` on, the
    policy's steps replaced by the simulation's)."""
    results = []
    for scenario in scenarios:
        for analysis in analyses:
            policy = base.model_copy(
                update={
                    "analysis": analysis,
                    "require_labels": True,
                    "steps": settings.steps,
                    "report_bounds": False,
                }
            )
            results.append(simulate(scenario, policy, settings, progress))
    return results
