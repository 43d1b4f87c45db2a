"""Validation scored by two gloo ranks together equals validation scored by one process.

Each rank scores every second item and the logits are gathered: both ranks must then hold
the same loss and metric (early stopping and the best epoch are decided from them on every
rank), and these must be the single process's, for tensors held whole (tabular families)
and for datasets read item by item (a text encoder's tokens), including an odd count.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from e2eai.training.ddp_loop import evaluate
from e2eai.training.families import torch_family

ROWS = 1001
"""Odd: the ranks' shares differ by one item."""


class ItemDataset(Dataset):
    """Items read one by one, as a token dataset is."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def _data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, 5, generator=generator)
    y = (x[:, 0] + 0.5 * torch.randn(ROWS, generator=generator) > 0).float()
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 1), nn.Flatten(0)), x, y


def _rank(rank: int, world_size: int, init_file: str, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        module, x, y = _data()
        family = torch_family("torch_mlp")
        scored = [
            evaluate(family, module, TensorDataset(x, y), rank, world_size),
            evaluate(family, module, ItemDataset(x, y), rank, world_size),
        ]
        torch.save(scored, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> list[list[tuple[float, float]]]:
    """Per rank: (loss, metric) of the tensors, then of the items, scored by two ranks."""
    folder = tmp_path_factory.mktemp("ddp-evaluation")
    out = str(folder / "scored")
    mp.spawn(_rank, args=(2, str(folder / "init"), out), nprocs=2, join=True)
    return [torch.load(f"{out}.{rank}") for rank in range(2)]


@pytest.mark.parametrize("kind", [0, 1], ids=["tensors", "items"])
def test_two_ranks_score_validation_as_one_process_does(ranked, kind: int) -> None:
    module, x, y = _data()
    family = torch_family("torch_mlp")
    dataset = TensorDataset(x, y) if kind == 0 else ItemDataset(x, y)
    alone_loss, alone_metric = evaluate(family, module, dataset)
    assert 0.5 < alone_metric < 1  # a metric that could differ: not a constant

    ranks = [scored[kind] for scored in ranked]
    assert ranks[0] == ranks[1]  # the same figures on every rank
    loss, metric = ranks[0]
    assert metric == alone_metric  # ROC-AUC does not depend on the order
    assert loss == pytest.approx(alone_loss, rel=1e-6)  # a mean summed in another order
