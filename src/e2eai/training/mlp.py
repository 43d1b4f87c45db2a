"""The tabular MLP: embeddings for categories, imputation and normalisation as buffers.

Everything a raw row needs besides the string → index lookup lives inside the module, so
the exported graph takes raw numeric values (NaN = missing) and serving does no arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from e2eai.training.tabular_spec import TabularSpec


class TabularMLP(nn.Module):
    """Logit of P(delayed) from numeric values [N, F] and category indices [N, C]."""

    def __init__(self, spec: TabularSpec) -> None:
        super().__init__()
        p = spec.params
        t = spec.numeric_transform()
        for name in ("fill", "lower", "upper", "mean", "std"):
            self.register_buffer(name, torch.tensor(t[name], dtype=torch.float32))
        self.register_buffer("log_mask", torch.tensor(t["log1p"], dtype=torch.bool))
        indicator = [j for j, flag in enumerate(t["missing_indicator"]) if flag]
        self.register_buffer("indicator_index", torch.tensor(indicator, dtype=torch.int64))
        self.embeddings = nn.ModuleList(
            nn.Embedding(cardinality, p.embedding_dim) for cardinality in spec.cardinalities()
        )
        layers: list[nn.Module] = []
        width_in = len(spec.numeric) + len(indicator) + p.embedding_dim * len(spec.categorical)
        for _ in range(p.depth):
            layers += [nn.Linear(width_in, p.hidden_width), nn.ReLU(), nn.Dropout(p.dropout)]
            width_in = p.hidden_width
        layers.append(nn.Linear(width_in, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(numeric)
        x = torch.where(missing, self.fill, numeric)
        x = torch.minimum(torch.maximum(x, self.lower), self.upper)
        x = torch.where(self.log_mask, torch.log1p(torch.clamp(x, min=0.0)), x)
        x = (x - self.mean) / self.std
        indicators = missing.index_select(1, self.indicator_index).to(x.dtype)
        embedded = [emb(categories[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.body(torch.cat([x, indicators, *embedded], dim=1)).squeeze(-1)


def build_model(spec: TabularSpec, seed: int) -> TabularMLP:
    """A freshly initialised model; the seed makes the initial weights reproducible."""
    torch.manual_seed(seed)
    return TabularMLP(spec)


def load_mlp(model_dir: Path) -> tuple[TabularMLP, TabularSpec]:
    """The model and spec saved in ``model_dir`` (``model.pt`` + ``model_spec.json``)."""
    spec = TabularSpec.load(model_dir / "model_spec.json")
    model = TabularMLP(spec)
    model.load_state_dict(torch.load(model_dir / "model.pt", weights_only=True))
    model.eval()
    return model, spec


@torch.no_grad()
def mlp_proba(model: TabularMLP, spec: TabularSpec, frame: pd.DataFrame) -> np.ndarray:
    """P(delayed) for every row of ``frame`` (eval mode, float32 like the ONNX graph)."""
    model.eval()
    numeric, indices = spec.encode(frame)
    logits = model(torch.from_numpy(numeric), torch.from_numpy(indices))
    return torch.sigmoid(logits).numpy()


def resize_embeddings(
    state: dict[str, torch.Tensor], old: TabularSpec, new: TabularSpec
) -> dict[str, torch.Tensor]:
    """Champion weights for a spec with more categories: old rows kept, new rows = unknown's."""
    state = dict(state)
    for j, name in enumerate(new.categorical):
        key = f"embeddings.{j}.weight"
        weight = state[key]
        grow = len(new.vocab[name]) - len(old.vocab[name])
        if grow > 0:
            state[key] = torch.cat([weight, weight[:1].repeat(grow, 1)], dim=0)
    return state
