"""The CNN's torch modules: training-only augmentation, the network, its dataset.

Kept apart from :mod:`e2eai.training.cnn_family` so that torch is imported only when a CNN
is built (the family registry, and the CLI, load without it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from e2eai.training.cnn_family import CnnParams


class ImageAugmentation(nn.Module):
    """Random crop after zero padding, horizontal flip and Gaussian noise, drawn per image.

    Active in training mode only; in eval mode (validation, holdout, export) it returns its
    input unchanged, so only training batches are ever augmented. Randomness comes from
    torch's global generator, which the worker seeds per epoch (same draws after a resume).
    """

    def __init__(self, padding: int = 2, flip: bool = True, noise_std: float = 0.03) -> None:
        super().__init__()
        self.padding, self.flip, self.noise_std = padding, flip, noise_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, _, h, w = x.shape
        if self.padding > 0:
            p = self.padding
            padded = nn.functional.pad(x, (p, p, p, p))
            # One offset per image, gathered with index grids (no Python loop per image).
            dy = torch.randint(0, 2 * p + 1, (n,))
            dx = torch.randint(0, 2 * p + 1, (n,))
            rows = (dy[:, None] + torch.arange(h))[:, :, None]
            cols = (dx[:, None] + torch.arange(w))[:, None, :]
            x = padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]
        if self.flip:
            flipped = torch.rand(n) < 0.5
            x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
        if self.noise_std > 0:
            x = (x + self.noise_std * torch.randn_like(x)).clamp(0.0, 1.0)
        return x


class FashionCnn(nn.Module):
    """augmentation → 2 × (conv 3×3 → batch norm → ReLU → max-pool 2) → dropout → linear."""

    def __init__(self, params: CnnParams, classes: int, height: int = 28, width: int = 28):
        super().__init__()
        c1, c2 = params.channels
        on = params.augment
        self.augment = ImageAugmentation(
            params.crop_padding if on else 0, params.flip and on, params.noise_std if on else 0.0
        )
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(params.dropout)
        self.head = nn.Linear(c2 * (height // 4) * (width // 4), classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features: what monitoring will compare as the model's embedding."""
        return self.features(self.augment(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))


class ImageDataset(Dataset):
    """Items ``(image [1, H, W] float32, label int64)`` over whole arrays.

    Not a TensorDataset on purpose: the worker evaluates a TensorDataset in one forward pass,
    which for ~8,000 images would hold several GB of activations; other datasets go in chunks.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        self.y = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]
