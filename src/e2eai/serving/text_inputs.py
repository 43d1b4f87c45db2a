"""Request validation for text tasks: one string input, tokenized here for the encoder.

A text model's graph takes ``input_ids`` and ``attention_mask`` (int64 ``[N, L]``); a client
sends the message itself, V2 ``BYTES`` of shape ``[N]`` or ``[N, 1]`` (JSON strings, or the
binary tensor extension's length-prefixed UTF-8), or V1 ``{"instances": [{"text": "…"}]}``.
Each message must be valid UTF-8 text, not blank, and at most ``max_chars`` characters;
anything else is a 400 naming the input and the row (413 for too many rows). The accepted
messages are tokenized with the served graph's own tokenizer (the ``tokenizers`` library,
the same :class:`~e2eai.export.text_tokens.MessageTokenizer` training used), so what is
served is what was trained.

The tokenizer travels inside the served ONNX file: :func:`embed_tokenizer` writes the
``tokenizer.json`` text and the maximum length into the graph's metadata at export, and
:func:`tokenizer_of` reads them back, so one registry artifact (sha256-checked) is the
whole model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from e2eai.errors import InvalidInferenceRequest, ServingError
from e2eai.serving.validation import Tensor, decode_raw

TOKENIZER_KEY = "e2eai.tokenizer_json"
MAX_LENGTH_KEY = "e2eai.max_length"


def _reject(field: str | None, problem: str, status: int = 400) -> InvalidInferenceRequest:
    return InvalidInferenceRequest(field, problem, status)


def embed_tokenizer(onnx_path: Path, tokenizer_path: Path, max_length: int) -> Path:
    """Write the tokenizer (``tokenizer.json`` text) and ``max_length`` into the graph's
    metadata, in place; the served file then needs nothing beside it."""
    import onnx

    model = onnx.load(str(onnx_path))
    props = {p.key: p for p in model.metadata_props}
    for key, value in (
        (TOKENIZER_KEY, Path(tokenizer_path).read_text()),
        (MAX_LENGTH_KEY, str(int(max_length))),
    ):
        entry = props.get(key) or model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(onnx_path))
    return onnx_path


def tokenizer_of(metadata: Mapping[str, str], work_dir: Path | None = None) -> Any:
    """The :class:`MessageTokenizer` embedded in a served graph's metadata."""
    from e2eai.export.text_tokens import MessageTokenizer

    if TOKENIZER_KEY not in metadata or MAX_LENGTH_KEY not in metadata:
        raise ServingError(
            "the text model's ONNX file carries no tokenizer (metadata "
            f"{TOKENIZER_KEY!r}, {MAX_LENGTH_KEY!r}); export it with e2eai"
        )
    folder = Path(work_dir or tempfile.mkdtemp(prefix="e2eai-tokenizer-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer.json"
    path.write_text(metadata[TOKENIZER_KEY])
    return MessageTokenizer(path, int(metadata[MAX_LENGTH_KEY]))


class TextInputs:
    """The request path's checks for one text input, and its tokenization."""

    def __init__(self, name: str, max_chars: int, tokenizer: Any = None) -> None:
        self.name = name
        self.max_chars = int(max_chars)
        self.names = (name,)
        self.tokenizer = tokenizer  # set when the graph is loaded

    # -- V2 ---------------------------------------------------------------------------------

    def feed_from_tensors(self, tensors: Sequence[Tensor], max_rows: int) -> dict[str, np.ndarray]:
        """Validate V2 input tensors; the encoder's feed for the accepted messages."""
        names = [t.name for t in tensors]
        if names != [self.name]:
            unknown = next((n for n in names if n != self.name), None)
            if unknown is not None:
                raise _reject(unknown[:80], f"not an input of this model (expected {self.name!r})")
            raise _reject(self.name, "missing: the model's one input is the message text")
        tensor = tensors[0]
        if tensor.datatype != "BYTES":
            raise _reject(self.name, f"datatype {tensor.datatype:.20} is not BYTES (send text)")
        shape = tensor.shape
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise _reject(self.name, f"shape {list(shape)[:6]} is not [N] or [N, 1]")
        self._check_rows(shape[0], max_rows)
        if tensor.raw is not None:
            values: list[Any] = list(decode_raw(tensor))
        else:
            if not isinstance(tensor.data, list):
                raise _reject(self.name, "'data' must be a list of strings")
            values = [
                row[0] if isinstance(row, list) and len(row) == 1 else row for row in tensor.data
            ]
        if len(values) != shape[0]:
            raise _reject(self.name, f"has {len(values)} values but shape {list(shape)}")
        return self.encode(self.messages(values))

    # -- V1 ---------------------------------------------------------------------------------

    def feed_from_instances(self, instances: Any, max_rows: int) -> dict[str, np.ndarray]:
        """V1 ``instances``: ``[{"text": "…"}, …]``."""
        if not isinstance(instances, list):
            raise _reject("instances", "must be a list of objects, one per message")
        self._check_rows(len(instances), max_rows, "instances")
        values = []
        for i, row in enumerate(instances):
            if not isinstance(row, Mapping) or set(row) != {self.name}:
                raise _reject("instances", f"row {i} must be an object {{{self.name!r}: text}}")
            values.append(row[self.name])
        return self.encode(self.messages(values))

    # -- the checks --------------------------------------------------------------------------

    def messages(self, values: Sequence[Any]) -> list[str]:
        """Each value as a message, or a 400 naming the first bad row."""
        texts = []
        for i, value in enumerate(values):
            if isinstance(value, bytes | bytearray | memoryview):
                try:
                    value = bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    raise _reject(self.name, f"row {i}: not UTF-8 text") from None
            if not isinstance(value, str):
                kind = "null" if value is None else type(value).__name__
                raise _reject(self.name, f"row {i}: a {kind}, not a string")
            if not value.strip():
                raise _reject(self.name, f"row {i}: the message is empty")
            if len(value) > self.max_chars:
                raise _reject(
                    self.name,
                    f"row {i}: {len(value)} characters exceed the limit of {self.max_chars}",
                )
            if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
                raise _reject(self.name, f"row {i}: not valid Unicode text (a lone surrogate)")
            texts.append(value)
        return texts

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self.tokenizer is None:
            raise ServingError("the text model is not loaded (no tokenizer yet)")
        return self.tokenizer.encode(texts)

    def _check_rows(self, rows: int, max_rows: int, field: str | None = None) -> None:
        field = field or self.name
        if rows == 0:
            raise _reject(field, "the request has no messages")
        if rows > max_rows:
            raise _reject(field, f"{rows} messages exceed the limit of {max_rows} per request", 413)
