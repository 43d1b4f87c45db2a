"""Drift of images: per-image statistics and the model's embedding, tested with Evidently.

An image task's input is one tensor, so the tabular check has nothing to compare column by
column. Each image is summarised instead by a few statistics that move when the camera, the
lighting or the pipeline in front of the model changes:

- ``brightness``: mean intensity;
- ``contrast``: standard deviation of the intensities;
- ``sharpness``: variance of the 4-neighbour Laplacian (zero padding: the background is
  black), the usual focus measure — blur drives it towards 0;
- ``dark_share``: share of near-black pixels (intensity below :data:`DARK_LEVEL`);
- ``horizontal_edge_share``: share of the gradient energy across rows (horizontal edges) in
  all gradient energy. Brightness, contrast and the Laplacian are blind to a 90° rotation;
  this one is not (upright garments have more vertical edges than horizontal ones).

and, when a model is given, by its embedding: the CNN's penultimate activations
(``FashionCnn.embed``, the flattened last feature maps) when the model has them, else its
class-probability vector, projected on the principal components of the reference's
(:mod:`e2eai.monitoring.embedding_drift`).

Every statistic and component is then one numeric column of
:func:`e2eai.monitoring.drift.check_drift`: Evidently's two-sample Kolmogorov-Smirnov test
per column, Holm-corrected across the columns (under no drift the chance that any is
flagged is at most ``alpha``), and a flagged column counts only when Evidently's normed
Wasserstein distance also reaches its floor. The window is drifted when any column is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from e2eai.monitoring.drift import DriftSettings
from e2eai.monitoring.embedding_drift import (
    EMBEDDING_COMPONENTS,
    EmbeddingDriftReport,
)

DARK_LEVEL = 0.1
"""Intensity (in [0, 1]) below which a pixel counts as near-black (~25 of 255)."""
IMAGE_STATISTICS = (
    "brightness",
    "contrast",
    "sharpness",
    "dark_share",
    "horizontal_edge_share",
)


def as_images(images: np.ndarray, side: str = "images") -> np.ndarray:
    """uint8 pixels ``[N, H, W]`` or model inputs ``[N, 1, H, W]`` in [0, 1] → float32
    ``[N, 1, H, W]`` in [0, 1]; ValueError naming ``side`` for anything else."""
    array = np.asarray(images)
    if array.dtype == np.uint8 and array.ndim == 3:
        return (array.astype(np.float32) / 255.0)[:, None]
    if array.ndim == 4 and array.shape[1] == 1 and np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    raise ValueError(
        f"the {side} have shape {array.shape} and dtype {array.dtype}: pass uint8 pixels "
        "[N, H, W] or float model inputs [N, 1, H, W] with intensities in [0, 1]"
    )


def image_statistics(images: np.ndarray) -> pd.DataFrame:
    """One row per image, one column per name of :data:`IMAGE_STATISTICS`."""
    x = as_images(images)[:, 0].astype(np.float64)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    laplacian = (
        padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
    ) - 4 * x
    across_rows = (np.diff(x, axis=1) ** 2).sum(axis=(1, 2))
    across_columns = (np.diff(x, axis=2) ** 2).sum(axis=(1, 2))
    energy = across_rows + across_columns
    return pd.DataFrame(
        {
            "brightness": x.mean(axis=(1, 2)),
            "contrast": x.std(axis=(1, 2)),
            "sharpness": laplacian.var(axis=(1, 2)),
            "dark_share": (x < DARK_LEVEL).mean(axis=(1, 2)),
            # A blank image has no edges: call it balanced rather than divide by zero.
            "horizontal_edge_share": np.divide(
                across_rows, energy, out=np.full_like(energy, 0.5), where=energy > 0
            ),
        }
    )


def model_embedding(model: Any, images: np.ndarray) -> tuple[np.ndarray, str]:
    """(``[N, D]`` embedding, its source) of ``images`` under ``model``.

    ``model`` is a loaded CNN (``CnnModel``: its torch module's ``embed``), a torch module with
    an ``embed`` method, or any image classifier with ``class_probabilities``. The source is
    ``"penultimate"`` or ``"probabilities"``.
    """
    module = getattr(model, "module", model)
    if callable(getattr(module, "embed", None)):
        import torch

        x = torch.from_numpy(as_images(images))
        was_training = module.training
        module.eval()  # the augmentation layer is the identity, batch norm uses its statistics
        try:
            with torch.no_grad():
                chunks = [module.embed(x[i : i + 1024]) for i in range(0, len(x), 1024)]
        finally:
            module.train(was_training)
        return torch.cat(chunks).flatten(1).numpy().astype(np.float64), "penultimate"
    if callable(getattr(model, "class_probabilities", None)):
        return np.asarray(model.class_probabilities(as_images(images)), np.float64), (
            "probabilities"
        )
    raise ValueError(
        f"a {type(model).__name__} has neither an embed method (a FashionCnn or a CnnModel) "
        "nor class_probabilities: pass a loaded image classifier or None"
    )


@dataclass(frozen=True)
class ImageDriftReport(EmbeddingDriftReport):
    """A window's image drift: Evidently's per-column evidence and which group moved (the
    embedding's source is ``"penultimate"``, ``"probabilities"`` or None: no model given)."""

    statistics_group: ClassVar[str] = "image_statistics"


def check_image_drift(
    reference: np.ndarray,
    current: np.ndarray,
    model: Any | None = None,
    *,
    components: int = EMBEDDING_COMPONENTS,
    settings: DriftSettings | None = None,
    reference_embedding: tuple[np.ndarray, str] | None = None,
) -> ImageDriftReport:
    """Test the ``current`` images against the ``reference`` ones: every image statistic, and
    with a ``model`` the first ``components`` principal components of its embedding.

    Images are uint8 pixels ``[N, H, W]`` or model inputs ``[N, 1, H, W]`` in [0, 1]; both
    sides need the same image size. ``reference_embedding`` is ``model_embedding(model,
    reference)`` when the caller has it already. ``settings`` are the tabular check's (alpha,
    tests, distance floors, sampling); the window is drifted when any column is.
    Raises ValueError naming the side when the sides differ in image size, or when
    ``reference_embedding`` does not have a row per reference image.
    """
    ref, cur = as_images(reference, "reference images"), as_images(current, "current images")
    if ref.shape[1:] != cur.shape[1:]:
        raise ValueError(
            f"reference images are {ref.shape[2:]} and current images {cur.shape[2:]}: "
            "compare images of one size"
        )
    embeddings, source = None, None
    if model is not None:
        ref_embedding, source = reference_embedding or model_embedding(model, ref)
        embeddings = (ref_embedding, model_embedding(model, cur)[0])
    return ImageDriftReport.check(
        image_statistics(ref),
        image_statistics(cur),
        embeddings,
        source,
        components=components,
        settings=settings,
    )
