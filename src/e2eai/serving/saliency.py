"""Occlusion saliency for image models: which regions the predicted class depends on.

For each image, every ``patch × patch`` square is in turn set to the background (0, black
in Fashion-MNIST) and the model is run on all the occluded copies in one batch; a square's
saliency is how much the probability of the image's predicted class falls when it is
hidden (negative: hiding it made the class more likely). Model-agnostic (the served ONNX
graph is all it needs: no gradients), one extra inference of ``(H / patch)²`` images per
explained image (49 at 28×28 and patch 4). The map is returned at the image's resolution,
each pixel carrying its square's value, so that it overlays the image directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

PATCH = 4
"""Side of an occluded square in pixels (28 = 7 × 4)."""


def occluded_copies(image: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """``[S, C, H, W]`` copies of one ``[C, H, W]`` image, square s set to 0 in copy s."""
    _, height, width = image.shape
    rows, cols = -(-height // patch), -(-width // patch)
    copies = np.repeat(image[None], rows * cols, axis=0)
    for s in range(rows * cols):
        r, c = divmod(s, cols)
        copies[s, :, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = 0.0
    return copies


def occlusion_saliency(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    probabilities: np.ndarray,
    patch: int = PATCH,
) -> list[dict[str, Any]]:
    """Per image: the predicted class, its probability and the ``H × W`` saliency map.

    ``predict`` maps ``[N, C, H, W]`` float32 images to class probabilities ``[N, K]``;
    ``probabilities`` are its answers for ``images`` (already computed by the caller).
    """
    explained = []
    for image, answer in zip(images, probabilities, strict=True):
        predicted = int(np.argmax(answer))
        _, height, width = image.shape
        occluded = predict(occluded_copies(image, patch))[:, predicted]
        drop = float(answer[predicted]) - occluded.astype(np.float64)
        cols = -(-width // patch)
        squares = drop.reshape(-1, cols)
        full = np.kron(squares, np.ones((patch, patch)))[:height, :width]
        explained.append(
            {
                "class": predicted,
                "probability": float(answer[predicted]),
                "patch": patch,
                "saliency": np.round(full, 6).tolist(),
            }
        )
    return explained


def token_occlusion(
    predict: Callable[[dict[str, np.ndarray]], np.ndarray],
    feed: dict[str, np.ndarray],
    probabilities: np.ndarray,
    id_to_token: Callable[[int], str | None],
) -> list[dict[str, Any]]:
    """Per message: the predicted class, its probability and each word piece's attribution,
    the fall of that probability when the piece alone is masked out (attention mask 0).

    ``feed`` holds ``input_ids`` and ``attention_mask`` ``[N, L]``; ``[CLS]`` and ``[SEP]``
    (the first and last attended positions) are never masked. One extra batch of as many
    sequences as the message has word pieces.
    """
    ids, mask = feed["input_ids"], feed["attention_mask"]
    explained = []
    for row, answer in enumerate(probabilities):
        predicted = int(np.argmax(answer))
        length = int(mask[row].sum())
        positions = list(range(1, max(length - 1, 1)))
        attributions: list[float] = []
        if positions:
            masks = np.repeat(mask[row : row + 1], len(positions), axis=0)
            masks[np.arange(len(positions)), positions] = 0
            copies = {
                "input_ids": np.repeat(ids[row : row + 1], len(positions), axis=0),
                "attention_mask": masks,
            }
            occluded = predict(copies)[:, predicted].astype(np.float64)
            attributions = (float(answer[predicted]) - occluded).tolist()
        explained.append(
            {
                "class": predicted,
                "probability": float(answer[predicted]),
                "tokens": [
                    {"token": id_to_token(int(ids[row, p])) or "", "attribution": round(a, 6)}
                    for p, a in zip(positions, attributions, strict=True)
                ],
            }
        )
    return explained
