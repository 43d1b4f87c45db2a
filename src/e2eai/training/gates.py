"""Evaluation gates: each a pass/fail with the numbers behind it, before deployment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: what was observed, the threshold, and a sentence for people."""

    name: str
    passed: bool
    observed: dict[str, float | None] = field(default_factory=dict)
    threshold: float = 0.0
    message: str = ""


def baseline_gate(
    model_auc: float, baseline_auc: float, margin: float, baseline: str
) -> GateResult:
    """The candidate must beat the ``baseline`` family's holdout ROC-AUC by ``margin``.

    ``baseline`` is the family in words (``logistic regression``); the gate is named after
    it (``beats_logistic_regression``).
    """
    lead = model_auc - baseline_auc
    passed = lead >= margin - 1e-12
    verb = "beats" if passed else "does not beat"
    return GateResult(
        name="beats_" + re.sub(r"[^a-z0-9]+", "_", baseline.lower()).strip("_"),
        passed=passed,
        observed={"model_roc_auc": model_auc, "baseline_roc_auc": baseline_auc, "lead": lead},
        threshold=margin,
        message=f"candidate ROC-AUC {model_auc:.4f} {verb} {baseline} "
        f"{baseline_auc:.4f} by the required {margin:.4f} (lead {lead:+.4f})",
    )


def champion_gate(
    model_auc: float,
    champion_auc: float | None,
    tolerance: float,
    champion_version: int | None = None,
) -> GateResult:
    """The candidate may trail the champion (same holdout) by at most ``tolerance``.

    Without a champion there is nothing to defend: the gate passes, saying so.
    """
    if champion_auc is None:
        return GateResult(
            name="not_worse_than_champion",
            passed=True,
            observed={"model_roc_auc": model_auc, "champion_roc_auc": None},
            threshold=tolerance,
            message="no champion: nothing to compare against",
        )
    gap = model_auc - champion_auc
    passed = gap >= -tolerance - 1e-12
    who = f"champion v{champion_version}" if champion_version is not None else "champion"
    verdict = "is not worse than" if passed else "is worse than"
    return GateResult(
        name="not_worse_than_champion",
        passed=passed,
        observed={
            "model_roc_auc": model_auc,
            "champion_roc_auc": champion_auc,
            "gap": gap,
            "champion_version": champion_version,
        },
        threshold=tolerance,
        message=f"candidate ROC-AUC {model_auc:.4f} {verdict} {who} {champion_auc:.4f} "
        f"on the same holdout beyond tolerance {tolerance:.4f} (gap {gap:+.4f})",
    )
