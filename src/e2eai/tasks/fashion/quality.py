"""The image data stage's part of ``quality.html``: one accepted example of each class (what
the model will see) and, per class, the accepted images and their mean intensity
(:mod:`e2eai.data.class_data` writes the page).
"""

from __future__ import annotations

import numpy as np

from e2eai.data.class_data import ClassSection
from e2eai.reporting import figure_png


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


def image_section(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> ClassSection:
    """The section for accepted ``images`` (uint8 ``[N, H, W]``) and their ``labels``."""
    rows = []
    for k, name in enumerate(classes):
        chosen = images[labels == k]
        mean = round(float(chosen.mean()) / 255.0, 4) if len(chosen) else None
        rows.append((name, len(chosen), mean))
    return ClassSection(
        items="images",
        note="Per class: how many images were accepted and their mean intensity (0–1); one "
        "example each.",
        picture=_examples_png(images, labels, classes),
        picture_alt="one accepted example per class",
        columns=("class", "images", "mean intensity"),
        rows=rows,
    )
