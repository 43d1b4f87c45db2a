"""An uploaded photo as the app keeps it: decoded once, with the predictor's own decoder, into
the small PNG the model reads.

A client sends a PNG or JPEG file as base64 text (a ``data:image/…;base64,`` URL is accepted
too, as a browser's FileReader makes it). :class:`~e2eai.serving.image_inputs.ImageInputs`
decodes it exactly as the predictor would (format, pixel limit, grayscale, Lanczos resize to
the task's ``H × W``), and the result is written back as a lossless PNG of the model's size:
28×28 grayscale for Fashion-MNIST, about 0.5–1 KB whatever was uploaded. That PNG is what the
app sends to serving (it decodes to the very same tensor) and what it stores with the
prediction, so the stored input is exactly what was served, its size is bounded by the
model's input, not the upload's, and History can show it as a thumbnail. Of the original
file only its format, size in pixels and bytes, and SHA-256 are kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from e2eai.errors import InvalidInferenceRequest
from e2eai.serving.image_inputs import MAX_PIXELS, ImageInputs

_DATA_URL = re.compile(r"^data:image/[a-z.+-]+;base64,", re.IGNORECASE)
_ROW_PREFIX = re.compile(r"^row \d+: ")


@dataclass(frozen=True)
class DecodedUpload:
    """One upload: the model-sized PNG (base64) and what is kept of the original file."""

    png_base64: str
    upload: dict[str, Any]  # {"format", "width", "height", "bytes", "sha256"}


class ImageUploads:
    """Decodes uploads for a model reading ``shape`` = (C, H, W) images named ``name``."""

    def __init__(self, name: str, shape: tuple[int, int, int]) -> None:
        self.name = name
        self.shape = shape
        self._inputs = ImageInputs(name, shape)

    def decode(self, text: str, field: str) -> DecodedUpload:
        """``text`` (base64 or a data URL) → the model-sized PNG; a 422 (413 for too many
        pixels) naming ``field`` when it is not a readable PNG/JPEG file."""
        encoded = _DATA_URL.sub("", text.strip(), count=1)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInferenceRequest(
                field, "not base64 text of a PNG or JPEG file", 422
            ) from None
        if not raw:
            raise InvalidInferenceRequest(field, "the file is empty", 422)
        try:
            feed = self._inputs.feed_from_instances(
                [{self.name: {"b64": base64.b64encode(raw).decode()}}], 1
            )
        except InvalidInferenceRequest as exc:
            problem = _ROW_PREFIX.sub("", exc.problem)
            raise InvalidInferenceRequest(
                field, problem, 413 if exc.status == 413 else 422
            ) from None
        pixels = feed[self.name][0]
        return DecodedUpload(png_base64=png_base64(pixels), upload=_describe(raw))


def png_base64(pixels: np.ndarray) -> str:
    """``[C, H, W]`` intensities in [0, 1] (each k/255: decoded from 8-bit files) as a PNG."""
    from PIL import Image

    levels = np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    # uint8 [H, W] is an "L" image, [H, W, 3] an "RGB" one.
    image = Image.fromarray(levels[0] if levels.shape[0] == 1 else levels.transpose(1, 2, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


def _describe(raw: bytes) -> dict[str, Any]:
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as image:  # decoded once already: the header is good
        return {
            "format": image.format,
            "width": image.width,
            "height": image.height,
            "bytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
        }


__all__ = ["MAX_PIXELS", "DecodedUpload", "ImageUploads"]
