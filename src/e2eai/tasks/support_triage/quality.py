"""The text data stage's quality report: ``quality.html`` beside ``quality.json``.

The record accounting and quarantine reasons as a plot, the accepted messages per class with
their length (characters) as a histogram and a table, one accepted example of each class,
and the first quarantined records with the reason naming the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e2eai.data.prepare import REASON, REASON_CODE, SOURCE_ROW
from e2eai.reporting import accounting_png, figure_png, png_data_uri, render

_SHOWN_QUARANTINE = 20
_EXAMPLE_CHARS = 160


def _lengths_png(lengths: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    top = max(int(lengths.max()) if len(lengths) else 1, 1)
    bins = np.linspace(0, top, 40)
    for k, name in enumerate(classes):
        ax.hist(lengths[labels == k], bins=bins, histtype="step", label=name)
    ax.set_xlabel("characters per message")
    ax.set_ylabel("messages")
    ax.set_title("Message length by class")
    ax.legend(fontsize=8)
    return figure_png(fig)


def write_text_quality_report(
    report: dict[str, Any],
    texts: pd.Series,
    labels: np.ndarray,
    quarantine: pd.DataFrame,
    classes: tuple[str, ...],
    out_dir: Path,
) -> Path:
    """Write ``quality.html`` for the accepted messages ``texts`` and their ``labels``."""
    lengths = texts.str.len().to_numpy()
    per_class = []
    for k, name in enumerate(classes):
        chosen = labels == k
        example = str(texts[chosen].iloc[0])[:_EXAMPLE_CHARS] if chosen.any() else ""
        median = float(np.median(lengths[chosen])) if chosen.any() else None
        per_class.append((name, int(chosen.sum()), median, example))
    shown = quarantine[[SOURCE_ROW, REASON_CODE, REASON]].head(_SHOWN_QUARANTINE)
    page = render(
        "text_quality.html.j2",
        report=report,
        plot=png_data_uri(accounting_png(report)),
        lengths=png_data_uri(_lengths_png(lengths, labels, classes)),
        classes=per_class,
        quarantine={"columns": list(shown.columns), "rows": shown.values.tolist()},
    )
    path = out_dir / "quality.html"
    path.write_text(page)
    return path
