"""The text data stage's part of ``quality.html``: the accepted messages' length
(characters) by class as a histogram, and per class their number, median length and first
message (:mod:`e2eai.data.class_data` writes the page).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from e2eai.data.class_data import ClassSection
from e2eai.reporting import figure_png

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


def text_section(
    texts: pd.Series, labels: np.ndarray, classes: tuple[str, ...], max_chars: int
) -> ClassSection:
    """The section for the accepted messages ``texts`` and their ``labels``."""
    lengths = texts.str.len().to_numpy()
    rows = []
    for k, name in enumerate(classes):
        chosen = labels == k
        example = str(texts[chosen].iloc[0])[:_EXAMPLE_CHARS] if chosen.any() else ""
        median = float(np.median(lengths[chosen])) if chosen.any() else None
        rows.append((name, int(chosen.sum()), median, example))
    return ClassSection(
        items="messages",
        note=f"Per class: how many messages were accepted (at most {max_chars} characters), "
        "their median length and the first one.",
        picture=_lengths_png(lengths, labels, classes),
        picture_alt="message length by class",
        columns=("class", "messages", "median characters", "example"),
        rows=rows,
    )
