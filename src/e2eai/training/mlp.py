"""The tabular Wide & Deep model: imputation and normalisation as buffers, two logits.

Everything a raw row needs besides the string → index lookup lives inside the module, so
the exported graph takes raw numeric values (NaN = missing) and serving does no arithmetic.

The logit is the sum of a *wide* linear part — normalised numerics and missing indicators,
one scalar weight per category (an embedding of dimension 1) and per hashed cross bucket of
a few feature pairs — and a *deep* MLP over the same numerics plus category embeddings. The
wide part alone is logistic regression (with crosses); on the flight data the signal is
almost linear, so the MLP only has to learn what the linear model misses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from e2eai.training.tabular_spec import TabularSpec


class TabularMLP(nn.Module):
    """Logit of P(positive) from numeric values [N, F] and category indices [N, C].

    ``extra_deep_width``: width of what :meth:`deep_extras` adds to the deep part's input (a
    subclass's sequence encoder); the plain model adds nothing.
    """

    def __init__(self, spec: TabularSpec, extra_deep_width: int = 0) -> None:
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
        self.wide = p.wide
        self.crosses: list[tuple[tuple[bool, int], tuple[bool, int]]] = []
        if p.wide:
            n_dense = len(spec.numeric) + len(indicator)
            self.wide_dense = nn.Linear(n_dense, 1)
            self.wide_embeddings = nn.ModuleList(
                nn.Embedding(cardinality, 1) for cardinality in spec.cardinalities()
            )
            self.cross_buckets = p.cross_buckets
            pairs = (spec.crosses or []) if p.cross_buckets > 0 else []
            self.crosses = [tuple(_column(spec, name) for name in pair) for pair in pairs]
            self.wide_crosses = nn.ModuleList(nn.Embedding(p.cross_buckets, 1) for _ in pairs)
            # Which term columns a cross's value goes to (half each): [pairs, F + C + 1].
            share = torch.zeros(len(pairs), len(spec.numeric) + len(spec.categorical) + 1)
            for k, pair in enumerate(self.crosses):
                for is_category, j in pair:
                    share[k, len(spec.numeric) + j if is_category else j] += 0.5
            self.register_buffer("cross_share", share, persistent=False)
            # Quantile bins give each numeric a step-shaped effect (what a tree would split).
            edges = spec.binned_edges() if p.numeric_bins > 0 else np.zeros((0, 0), np.float32)
            self.register_buffer("bin_edges", torch.from_numpy(edges))
            n_bins = edges.shape[1] + 1
            offsets = torch.arange(len(spec.numeric), dtype=torch.int64) * n_bins
            self.register_buffer("bin_offset", offsets)
            self.wide_bins = nn.Embedding(len(spec.numeric) * n_bins if edges.size else 1, 1)
            # Start as "no opinion": the first gradient steps then fit the linear signal.
            for emb in [*self.wide_embeddings, *self.wide_crosses, self.wide_bins]:
                nn.init.zeros_(emb.weight)
            nn.init.zeros_(self.wide_dense.weight)
            nn.init.zeros_(self.wide_dense.bias)
        layers: list[nn.Module] = []
        width_in = len(spec.numeric) + len(indicator) + p.embedding_dim * len(spec.categorical)
        width_in += extra_deep_width
        for _ in range(p.depth):
            layers += [nn.Linear(width_in, p.hidden_width), nn.ReLU(), nn.Dropout(p.dropout)]
            width_in = p.hidden_width
        layers.append(nn.Linear(width_in, 1))
        self.body = nn.Sequential(*layers)
        if p.wide:  # the deep logit starts at 0: training begins as the linear model
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)

    def forward(self, numeric: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        filled, dense, embedded = self._prepare(numeric, categories)
        logit = self.body(torch.cat([dense, *embedded], dim=1)).squeeze(-1)
        if not self.wide:
            return logit
        wide = self.wide_dense(dense)
        for j, emb in enumerate(self.wide_embeddings):
            wide = wide + emb(categories[:, j])
        # Bins and crosses see the imputed value clipped to the training range, so a value
        # beyond it (a new month, hour 24) lands where the edge of the range did.
        clipped = torch.minimum(torch.maximum(filled, self.lower), self.upper)
        if self.bin_edges.numel():
            wide = wide + self.wide_bins(self._bins(clipped)).sum(dim=1)
        for (a, b), emb in zip(self.crosses, self.wide_crosses, strict=True):
            wide = wide + emb(self._cross_key(a, b, clipped, categories))
        return logit + wide.squeeze(-1)

    def terms(self, numeric: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        """The logit split by input: [N, F + C + 1], numerics, categories, then the deep part.

        ``terms(...).sum(1) + wide_dense.bias`` is ``forward(...)``. A numeric's term is its
        wide weight on the normalised value, its missing indicator and its quantile bin; a
        category's is its wide weight; a hashed cross is split half and half between its two
        inputs; the deep MLP (what is not additive) is the last column. Wide models only.
        """
        if not self.wide:
            raise ValueError("only a wide model's logit splits by input")
        filled, dense, embedded = self._prepare(numeric, categories)
        n_numeric = numeric.shape[1]
        weight = self.wide_dense.weight[0]
        x, indicators = dense[:, :n_numeric], dense[:, n_numeric:]
        numeric_terms = (x * weight[:n_numeric]).index_add(
            1, self.indicator_index, indicators * weight[n_numeric:]
        )
        clipped = torch.minimum(torch.maximum(filled, self.lower), self.upper)
        if self.bin_edges.numel():
            numeric_terms = numeric_terms + self.wide_bins(self._bins(clipped)).squeeze(-1)
        parts = [numeric_terms]
        parts += [emb(categories[:, j]) for j, emb in enumerate(self.wide_embeddings)]
        parts.append(self.body(torch.cat([dense, *embedded], dim=1)))
        terms = torch.cat(parts, dim=1)
        if self.crosses:
            crossed = torch.cat(
                [
                    emb(self._cross_key(a, b, clipped, categories))
                    for (a, b), emb in zip(self.crosses, self.wide_crosses, strict=True)
                ],
                dim=1,
            )
            terms = terms + crossed @ self.cross_share
        return terms

    def term_names(self, spec: TabularSpec) -> list[str]:
        """The columns of :meth:`terms`: the spec's numerics, categories, then ``deep``."""
        return [*spec.numeric, *spec.categorical, DEEP_TERM]

    def _prepare(
        self, numeric: torch.Tensor, categories: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(imputed numerics, normalised numerics + missing indicators, the deep part's
        embeddings and extras)."""
        missing = torch.isnan(numeric)
        x = filled = torch.where(missing, self.fill, numeric)
        x = torch.minimum(torch.maximum(x, self.lower), self.upper)
        x = torch.where(self.log_mask, torch.log1p(torch.clamp(x, min=0.0)), x)
        x = (x - self.mean) / self.std
        indicators = missing.index_select(1, self.indicator_index).to(x.dtype)
        embedded = [emb(categories[:, j]) for j, emb in enumerate(self.embeddings)]
        embedded += self.deep_extras(numeric, x)
        return filled, torch.cat([x, indicators], dim=1), embedded

    def deep_extras(self, numeric: torch.Tensor, normalised: torch.Tensor) -> list[torch.Tensor]:
        """More inputs of the deep part, [N, width] each, from the raw numerics (NaN =
        missing) and their imputed, clipped and standardised values: none here."""
        return []

    def _bins(self, clipped: torch.Tensor) -> torch.Tensor:
        return (clipped.unsqueeze(-1) > self.bin_edges).sum(dim=-1) + self.bin_offset

    def _cross_key(
        self,
        a: tuple[bool, int],
        b: tuple[bool, int],
        clipped: torch.Tensor,
        categories: torch.Tensor,
    ) -> torch.Tensor:
        key = self._cross_part(a, clipped, categories) * _CROSS_MULTIPLIER
        key = key + self._cross_part(b, clipped, categories)
        return torch.remainder(key, self.cross_buckets)

    @staticmethod
    def _cross_part(
        column: tuple[bool, int], numeric: torch.Tensor, categories: torch.Tensor
    ) -> torch.Tensor:
        """Non-negative int64 code of one cross component: category index or integer value.

        ``numeric`` is imputed and clipped to the training range already.
        """
        is_category, j = column
        if is_category:
            return categories[:, j]
        # An integer-valued numeric (dep_hour), imputed and clipped: value v → floor(v) ≥ 0.
        value = torch.clamp(torch.floor(numeric[:, j]), 0.0, _CROSS_MAX_VALUE)
        return value.to(torch.int64)

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(wide, deep) parameters: the optimiser gives the deep part its own learning rate."""
        wide = [p for n, p in self.named_parameters() if n.startswith("wide_")]
        deep = [p for n, p in self.named_parameters() if not n.startswith("wide_")]
        return wide, deep


DEEP_TERM = "deep"
"""Name of the deep MLP's column of :meth:`TabularMLP.terms` (the interactions)."""
_CROSS_MULTIPLIER = 7919
"""Prime spreading the first component before the modulo (codes stay far below int64)."""
_CROSS_MAX_VALUE = 1e6


def _column(spec: TabularSpec, name: str) -> tuple[bool, int]:
    """(is categorical, position in its input tensor) of a cross component."""
    if name in spec.categorical:
        return True, spec.categorical.index(name)
    return False, spec.numeric.index(name)


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
    """P(positive) for every row of ``frame`` (eval mode, float32 like the ONNX graph)."""
    model.eval()
    numeric, indices = spec.encode(frame)
    logits = model(torch.from_numpy(numeric), torch.from_numpy(indices))
    return torch.sigmoid(logits).numpy()


def resize_embeddings(
    state: dict[str, torch.Tensor], old: TabularSpec, new: TabularSpec
) -> dict[str, torch.Tensor]:
    """Champion weights for a spec with more categories: old rows kept, new rows = unknown's.

    Applies to the deep embeddings and the wide per-category weights; hashed cross tables
    have a fixed size (indices never move, so a new category only lands in new buckets).
    """
    state = dict(state)
    for j, name in enumerate(new.categorical):
        grow = len(new.vocab[name]) - len(old.vocab[name])
        for key in (f"embeddings.{j}.weight", f"wide_embeddings.{j}.weight"):
            if grow > 0 and key in state:
                weight = state[key]
                state[key] = torch.cat([weight, weight[:1].repeat(grow, 1)], dim=0)
    return state
