"""The image data stage's quality report: ``quality.html`` beside ``quality.json``.

The record accounting and quarantine reasons as a plot, the accepted images per class with
their mean intensity, one accepted example of each class (what the model will see), and the
first quarantined records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e2eai.data.prepare import REASON, REASON_CODE, SOURCE_ROW
from e2eai.reporting import accounting_png, figure_png, png_data_uri, render

_SHOWN_QUARANTINE = 20


def _examples_png(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(classes), figsize=(1.2 * len(classes), 1.6))
    for k, (ax, name) in enumerate(zip(np.atleast_1d(axes), classes, strict=True)):
        first = np.flatnonzero(labels == k)
        if len(first):
            ax.imshow(images[first[0]], cmap="gray", vmin=0, vmax=255)
        ax.set_title(name, fontsize=7)
        ax.axis("off")
    return figure_png(fig)


def write_image_quality_report(
    report: dict[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    quarantine: pd.DataFrame,
    classes: tuple[str, ...],
    out_dir: Path,
) -> Path:
    """Write ``quality.html`` for accepted ``images`` (uint8 ``[N, H, W]``) and ``labels``."""
    per_class = []
    for k, name in enumerate(classes):
        chosen = images[labels == k]
        mean = round(float(chosen.mean()) / 255.0, 4) if len(chosen) else None
        per_class.append((name, len(chosen), mean))
    shown = quarantine[[SOURCE_ROW, REASON_CODE, REASON]].head(_SHOWN_QUARANTINE)
    page = render(
        "image_quality.html.j2",
        report=report,
        plot=png_data_uri(accounting_png(report)),
        examples=png_data_uri(_examples_png(images, labels, classes)),
        classes=per_class,
        quarantine={"columns": list(shown.columns), "rows": shown.values.tolist()},
    )
    path = out_dir / "quality.html"
    path.write_text(page)
    return path
