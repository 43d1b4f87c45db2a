"""The run's report: ``summary.json`` and a self-contained ``report.html`` with its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2eai import jsonable
from e2eai.lifecycle.canary_evidence import plot_confidence_sequences
from e2eai.lifecycle.record import LoopRecord
from e2eai.reporting import png_data_uri, render


def plot_canary_decisions(decisions: list[dict[str, Any]], path: Path) -> Path | None:
    """Canary weight and the quality figure of both slots after each analysis round, as a
    PNG at ``path``; None when there was no decision."""
    if not decisions:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
    steps = range(1, len(decisions) + 1)
    left.step(steps, [d["weight_after"] for d in decisions], where="post", color="#4c72b0")
    for i, d in zip(steps, decisions, strict=True):
        if d["action"] in ("promote", "rollback"):
            left.annotate(d["action"], (i, d["weight_after"]), color="#c44e52")
    left.set_xlabel("analysis round")
    left.set_ylabel("canary traffic %")
    left.set_title("Canary weight after each analysis")
    # The quality figure the analysis read: mean Brier of both models on the same rows
    # (sequential, shadow-scored) or each slot's own ROC-AUC (fixed).
    metrics = {e["metric"] for d in decisions for e in d["evidence"]}
    metric, title = (
        ("brier_paired", "Mean Brier score on the same labelled rows (lower is better)")
        if "brier_paired" in metrics
        else ("roc_auc", "Served ROC-AUC on labelled traffic")
    )
    for slot, color in (("stable", "#4c72b0"), ("canary", "#dd8452")):
        values = [
            next((e[slot] for e in d["evidence"] if e["metric"] == metric), None) for d in decisions
        ]
        right.plot(list(steps), values, marker="o", color=color, label=slot)
    right.set_title(title)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(record: LoopRecord) -> Path:
    """The run's HTML report (and summary.json) in its run directory."""
    summary = record.summary()
    (record.run_dir / "summary.json").write_text(jsonable.dumps(summary, indent=2))
    models = [
        {
            "role": role,
            "version": model["version"],
            "stage": model.get("stage", ""),
            "metrics": model["metrics"],
            "holdout_window": model["holdout_window"],
            "plots": {n: uri for n, p in model["plots"].items() if (uri := png_data_uri(p))},
        }
        for role, model in record.models.items()
    ]
    canary_png = plot_canary_decisions(record.canary, record.run_dir / "canary.png")
    page = render(
        "loop_report.html.j2",
        run_name=record.run_dir.name,
        outcome=record.outcome,
        data=record.data,
        models=models,
        metric_names=list(
            dict.fromkeys(k for m in models for scored in m["metrics"].values() for k in scored)
        ),
        monitoring=record.monitoring,
        canary_plot=png_data_uri(canary_png),
        evidence_plot=png_data_uri(plot_confidence_sequences(record.canary)),
        decisions=record.canary,
        steps=record.steps,
    )
    record.report_path.write_text(page)
    return record.report_path
