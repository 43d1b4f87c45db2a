"""What a pipeline run shows people: the gate verdict (Markdown) and a training report (HTML)."""

from __future__ import annotations

from pathlib import Path

from e2eai.reporting import format_window, png_data_uri, render
from e2eai.training.run import TrainingResult

_HEADLINE = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "rows")


def gates_markdown(result: TrainingResult) -> str:
    """The gate verdict: PASSED/FAILED, then one line per gate with its numbers."""
    verdict = "PASSED" if result.passed else "FAILED"
    consequence = (
        "the candidate is exported, registered and deployed as a canary"
        if result.passed
        else "nothing is registered or deployed"
    )
    lines = [f"# Evaluation gates: {verdict}", "", f"{consequence}.", ""]
    lines += ["| gate | passed | threshold | why |", "|---|---|---|---|"]
    for gate in result.gates:
        mark = "yes" if gate.passed else "**no**"
        lines.append(f"| {gate.name} | {mark} | {gate.threshold:g} | {gate.message} |")
    lines += ["", f"Holdout {format_window(result.holdout_window)}, "
              f"trained on {format_window(result.training_window)}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def failed_gate_reasons(result: TrainingResult) -> list[str]:
    """One sentence per failed gate."""
    return [f"{g.name}: {g.message}" for g in result.gates if not g.passed]


def training_report_html(result: TrainingResult) -> str:
    """A self-contained HTML page: holdout metrics per model, gates, ROC and calibration plots."""
    plots = {Path(p).stem: uri for p in result.plots.values() if (uri := png_data_uri(p))}
    return render("training_report.html.j2", result=result, headline=_HEADLINE, plots=plots)
