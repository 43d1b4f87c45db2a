"""What a pipeline run shows people: the gate verdict (Markdown) and a training report (HTML)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from e2eai.training.run import TrainingResult

_HEADLINE = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "rows")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "–" if value is None else str(value)


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
    lines += ["", f"Holdout {result.holdout_window['start']} .. {result.holdout_window['end']}, "
              f"training window {result.training_window}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def failed_gate_reasons(result: TrainingResult) -> list[str]:
    """One sentence per failed gate."""
    return [f"{g.name}: {g.message}" for g in result.gates if not g.passed]


def _image(path: Path) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def training_report_html(result: TrainingResult) -> str:
    """A self-contained HTML page: holdout metrics per model, gates, ROC and calibration plots."""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in _HEADLINE)
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(f"<td>{_fmt(metrics.get(k))}</td>" for k in _HEADLINE)
        + "</tr>"
        for name, metrics in result.metrics.items()
    )
    gates = "".join(
        f"<tr class={'pass' if g.passed else 'fail'}><td>{html.escape(g.name)}</td>"
        f"<td>{'passed' if g.passed else 'FAILED'}</td><td>{html.escape(g.message)}</td></tr>"
        for g in result.gates
    )
    plots = "".join(_image(p) for p in result.plots.values())
    verdict = "passed" if result.passed else "failed"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Training report: {html.escape(result.family)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}.pass{{background:#e7f6e7}}
.fail{{background:#fbe3e3}}img{{max-width:45%;margin-right:1em}}</style></head><body>
<h1>Training report: {html.escape(result.family)} — gates {verdict}</h1>
<p>Training window {html.escape(str(result.training_window))}; holdout
{html.escape(str(result.holdout_window))}; raw snapshot {html.escape(str(result.raw_snapshot))};
warm start from {html.escape(str(result.parent_version))}.</p>
<h2>Holdout metrics</h2><table><tr><th>model</th>{head}</tr>{rows}</table>
<h2>Gates</h2><table><tr><th>gate</th><th>verdict</th><th>why</th></tr>{gates}</table>
<h2>Plots</h2>{plots}
</body></html>
"""
