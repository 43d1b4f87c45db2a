"""Request validation for image tasks: one ``image`` input, as a tensor or as encoded files.

What :class:`~e2eai.serving.validation.ModelInputs` is for rows of columns, for a task whose
model reads one image tensor ``[N, C, H, W]`` float32 in [0, 1]. A client sends either

- the tensor itself: V2 ``FP32`` (or any numeric datatype) of shape ``[N, C, H, W]``, as
  JSON ``data`` (flat or nested) or with the binary tensor extension; V1
  ``{"instances": [{"image": [[[…]]]}]}``;
- encoded files: V2 ``BYTES`` of shape ``[N]`` or ``[N, 1]``, each element a PNG or JPEG
  (base64 text in JSON, the file's bytes with the binary extension); V1
  ``{"instances": [{"image": {"b64": "…"}}]}``. Each file is decoded with Pillow, converted
  to grayscale and, when it is not ``H×W`` already, resized to it (Lanczos), then scaled to
  [0, 1]. Fashion-MNIST shows a light garment on a black background: a photo on a white
  background should be inverted by the client first; nothing here guesses.

Everything else is a 400 naming ``image`` (or the field at fault) and saying what was
expected; a file whose pixel count exceeds :data:`MAX_PIXELS` is refused with 413 before it
is decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from e2eai.errors import InvalidInferenceRequest
from e2eai.serving.validation import Tensor, decode_raw

FORMATS = frozenset({"PNG", "JPEG"})
"""Encodings an upload may use."""
MAX_PIXELS = 4096 * 4096
"""Largest upload (width × height) decoded; larger ones are refused (decompression bombs)."""
_NUMERIC_KINDS = frozenset("iuf")  # numpy dtype kinds: no bool, no strings, no objects


def _reject(field: str | None, problem: str, status: int = 400) -> InvalidInferenceRequest:
    return InvalidInferenceRequest(field, problem, status)


class ImageInputs:
    """The request path's checks for one image input of shape ``(C, H, W)``."""

    def __init__(self, name: str, shape: tuple[int, int, int]) -> None:
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.names = (name,)

    # -- V2 -------------------------------------------------------------------------------------

    def feed_from_tensors(self, tensors: Sequence[Tensor], max_rows: int) -> dict[str, np.ndarray]:
        """Validate V2 input tensors and build the ONNX Runtime feed ``{name: [N, C, H, W]}``."""
        names = [t.name for t in tensors]
        if names != [self.name]:
            unknown = next((n for n in names if n != self.name), None)
            if unknown is not None:
                raise _reject(unknown[:80], f"not an input of this model (expected {self.name!r})")
            raise _reject(self.name, "missing: the model's one input is the image")
        name, datatype, shape, data, raw = tensors[0]
        if datatype == "BYTES":
            return {self.name: self._decode_files(shape, data, raw, max_rows)}
        if len(shape) != 4 or tuple(shape[1:]) != self.shape:
            raise _reject(
                name, f"shape {list(shape)[:6]} is not [N, {', '.join(map(str, self.shape))}]"
            )
        self._check_rows(shape[0], max_rows)
        if raw is not None:
            values = decode_raw(tensors[0])
            array = np.asarray(values)
        else:
            array = self._numbers(data)
        if array.size != math.prod(shape):
            raise _reject(name, f"has {array.size} values but shape {list(shape)}")
        return {self.name: self._checked(array.reshape(shape))}

    # -- V1 -------------------------------------------------------------------------------------

    def feed_from_instances(self, instances: Any, max_rows: int) -> dict[str, np.ndarray]:
        """V1 ``instances``: ``[{"image": nested [C, H, W] numbers | {"b64": file}}]``."""
        if not isinstance(instances, list):
            raise _reject("instances", "must be a list of objects, one per image")
        self._check_rows(len(instances), max_rows, "instances")
        images = []
        for i, row in enumerate(instances):
            if not isinstance(row, Mapping) or set(row) != {self.name}:
                raise _reject("instances", f"row {i} must be an object {{{self.name!r}: …}}")
            value = row[self.name]
            if isinstance(value, Mapping):
                encoded = value.get("b64")
                if set(value) != {"b64"} or not isinstance(encoded, str):
                    raise _reject(self.name, f"row {i}: an encoded image is {{'b64': text}}")
                images.append(self._decode_one(_from_base64(encoded, i, self.name), i))
                continue
            array = self._numbers(value)
            if array.shape != self.shape:
                raise _reject(
                    self.name, f"row {i}: shape {list(array.shape)[:6]} is not {list(self.shape)}"
                )
            images.append(self._checked(array[None]))
        return {self.name: np.concatenate(images)}

    # -- the checks -------------------------------------------------------------------------------

    def _check_rows(self, rows: int, max_rows: int, field: str | None = None) -> None:
        field = field or self.name
        if rows == 0:
            raise _reject(field, "the request has no images")
        if rows > max_rows:
            raise _reject(field, f"{rows} images exceed the limit of {max_rows} per request", 413)

    def _numbers(self, data: Any) -> np.ndarray:
        """JSON numbers (flat or nested) as an array; strings, booleans, nulls and ragged
        nesting are refused."""
        if not isinstance(data, list):
            raise _reject(self.name, "'data' must be a list of numbers")
        try:
            array = np.array(data)
        except ValueError:  # ragged nesting
            raise _reject(
                self.name, "nested 'data' is ragged: every row must have its shape"
            ) from None
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise _reject(self.name, "values must be numbers (no strings, booleans or nulls)")
        return array

    def _checked(self, array: np.ndarray) -> np.ndarray:
        """Float32 with every intensity finite and in [0, 1]; else the first bad one named."""
        with np.errstate(over="ignore", invalid="ignore"):
            image = np.asarray(array, dtype=np.float32)
        bad = ~((image >= 0.0) & (image <= 1.0))  # NaN and infinities are bad too
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _reject(
                self.name,
                f"intensity {float(array[index])!r} at {list(index)} is not in [0, 1] "
                "(send pixel / 255)",
            )
        return np.ascontiguousarray(image)

    def _decode_files(self, shape: tuple[int, ...], data: Any, raw: bytes | None, max_rows: int):
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise _reject(self.name, f"BYTES shape {list(shape)[:6]} is not [N] or [N, 1]")
        self._check_rows(shape[0], max_rows)
        if raw is not None:
            files = decode_raw(Tensor(self.name, "BYTES", shape, None, raw))
        else:
            if not isinstance(data, list):
                raise _reject(self.name, "'data' must be a list of base64 PNG/JPEG files")
            flat = [row[0] if isinstance(row, list) and len(row) == 1 else row for row in data]
            if not all(isinstance(item, str) for item in flat):
                raise _reject(self.name, "each element must be a base64 text of a PNG/JPEG file")
            files = [_from_base64(item, i, self.name) for i, item in enumerate(flat)]
        if len(files) != shape[0]:
            raise _reject(self.name, f"has {len(files)} files but shape {list(shape)}")
        return np.concatenate([self._decode_one(bytes(f), i) for i, f in enumerate(files)])

    def _decode_one(self, encoded: bytes, row: int) -> np.ndarray:
        """One PNG/JPEG file → float32 ``[1, C, H, W]`` in [0, 1]."""
        from PIL import Image, UnidentifiedImageError

        channels, height, width = self.shape
        try:
            with Image.open(io.BytesIO(encoded)) as image:
                if image.format not in FORMATS:
                    raise _reject(self.name, f"row {row}: a {image.format} file, not PNG or JPEG")
                if image.width * image.height > MAX_PIXELS:
                    raise _reject(
                        self.name,
                        f"row {row}: {image.width}×{image.height} pixels exceed the limit of "
                        f"{MAX_PIXELS:,}",
                        413,
                    )
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    mode = "L" if channels == 1 else "RGB"
                    decoded = image.convert(mode)
                    if decoded.size != (width, height):
                        decoded = decoded.resize((width, height), Image.Resampling.LANCZOS)
                    pixels = np.asarray(decoded, dtype=np.float32) / 255.0
        except InvalidInferenceRequest:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Warning) as exc:
            raise _reject(
                self.name, f"row {row}: not a readable PNG/JPEG file ({type(exc).__name__})"
            ) from None
        if channels == 1:
            return pixels.reshape(1, 1, height, width)
        return pixels.transpose(2, 0, 1)[None]


def _from_base64(text: str, row: int, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _reject(field, f"row {row}: not base64 text of a file") from None
