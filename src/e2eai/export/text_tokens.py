"""Messages → the text encoder's inputs (``input_ids``, ``attention_mask``, int64).

The one tokenization of the text families: the fine-tune's training data, the frozen
baseline's embeddings, the parity check and the predictor all call :class:`MessageTokenizer`,
so what is served is what was trained. It runs the HuggingFace ``tokenizers`` library (Rust,
no torch) on the encoder's own ``tokenizer.json`` (BERT word pieces, lower-cased, accents
stripped), which a model directory carries beside its weights. The file's fixed padding to
128 is replaced: a batch is padded to its longest message (``pad_to`` fixes the width
instead) and truncated to ``max_length`` word pieces, ``[CLS]``/``[SEP]`` included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from e2eai.errors import ModelArtifactError

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
TOKENIZER_FILE = "tokenizer.json"


class MessageTokenizer:
    """A ``tokenizer.json`` set up to truncate at ``max_length`` and pad per batch."""

    def __init__(self, path: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        if not path.is_file():
            raise ModelArtifactError(f"{path}: the encoder's {TOKENIZER_FILE} is missing")
        if max_length < 2:
            raise ValueError(f"max_length={max_length}: [CLS] and [SEP] alone need 2")
        self.path = path
        self.max_length = max_length
        self._tokenizer = Tokenizer.from_file(str(path))
        self._pad_id = self._tokenizer.token_to_id("[PAD]") or 0
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length)

    def encode(self, texts: Sequence[str], pad_to: int | None = None) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask``, int64 ``[N, L]``: ``L`` is the longest
        message's length in word pieces, or ``pad_to`` (at least ``max_length``)."""
        encodings = self._tokenizer.encode_batch([str(t) for t in texts])
        width = pad_to if pad_to is not None else max((len(e.ids) for e in encodings), default=2)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for i, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[i, :n] = encoding.ids
            mask[i, :n] = 1
        return {INPUT_IDS: ids, ATTENTION_MASK: mask}

    def lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Word pieces per message after truncation (``[CLS]``/``[SEP]`` included)."""
        return np.array([len(e.ids) for e in self._tokenizer.encode_batch(list(texts))])

    def id_to_token(self, token_id: int) -> str | None:
        """The word piece of one id (``##`` marks a continuation), None for an unknown id."""
        return self._tokenizer.id_to_token(int(token_id))
