"""The evidence behind canary decisions, as the reports show it.

Each analysis (every look, holds included) of the sequential analysis reports the confidence
sequence on the mean paired Brier difference ``brier(stable) - brier(canary)`` over the
shadow-scored labelled rows so far (:mod:`e2eai.serving.sequential`): the canary is rolled
back once the band lies below 0 and passes once it lies above ``-margin``. Plotted against
the rows it had read, one panel per canary, the band shows why the rollout ended where it
did and how much traffic it took.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PAIRED_METRIC = "brier_paired"


@dataclass(frozen=True)
class Look:
    """One analysis of one canary: the band after ``rows`` paired rows and what it decided."""

    canary_version: str
    rows: int
    lower: float
    upper: float
    mean: float | None
    margin: float
    action: str


def looks(decisions: Iterable[dict[str, Any]]) -> list[Look]:
    """The sequential looks among canary decisions (``CanaryDecision`` dumps, oldest first);
    decisions of the fixed analysis, or without paired rows yet, have none."""
    out = []
    for decision in decisions:
        check = next(
            (e for e in decision.get("evidence", []) if e.get("metric") == PAIRED_METRIC), None
        )
        if check is None or not check.get("n_stable") or check.get("lower") is None:
            continue
        out.append(
            Look(
                canary_version=str(decision["canary_version"]),
                rows=int(check["n_stable"]),
                lower=float(check["lower"]),
                upper=float(check["upper"]),
                mean=check.get("statistic"),
                margin=float(check.get("margin") or 0.0),
                action=str(decision["action"]),
            )
        )
    return out


def plot_confidence_sequences(
    decisions: Iterable[dict[str, Any]], columns: int = 3
) -> bytes | None:
    """PNG: per canary, the confidence sequence at each look (band), the running mean, the
    rollback line (0) and the pass line (``-margin``, the margin the analysis used), the last
    action marked; None when no look of the sequential analysis was made."""
    from e2eai.reporting import figure_png

    seen = looks(decisions)
    if not seen:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions = list(dict.fromkeys(look.canary_version for look in seen))
    columns = min(columns, len(versions))
    rows = -(-len(versions) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(versions) :]:
        ax.set_visible(False)
    for ax, version in zip(axes.flat, versions, strict=False):
        mine = [look for look in seen if look.canary_version == version]
        margin = mine[-1].margin
        x = [look.rows for look in mine]
        ax.fill_between(
            x, [look.lower for look in mine], [look.upper for look in mine], step="post",
            color="#4c72b0", alpha=0.25, label="confidence sequence",
        )  # fmt: skip
        ax.plot(x, [look.mean for look in mine], color="#4c72b0", lw=1, label="mean")
        ax.axhline(0, color="#c44e52", lw=1, ls="--", label="rollback below")
        ax.axhline(-margin, color="#55a868", lw=1, ls="--", label="pass above")
        last = mine[-1]
        if last.action in ("promote", "rollback", "step"):
            ax.annotate(last.action, (last.rows, last.upper), color="#c44e52", fontsize=8)
        spread = max(max(abs(look.lower), abs(look.upper)) for look in mine[len(mine) // 2 :])
        ax.set_ylim(-max(spread, 3 * margin) * 1.2, max(spread, 3 * margin) * 1.2)
        ax.set_title(f"canary v{version}: {last.action} after {last.rows:,} rows", fontsize=9)
        ax.set_xlabel("shadow-scored labelled rows")
        ax.set_ylabel("Brier(stable) − Brier(canary)", fontsize=8)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    return figure_png(fig)
