"""``TorchFamily``: a family the DDP worker trains, and the hooks the worker calls.

The worker (:mod:`e2eai.training.ddp_loop`) owns what every torch family shares: the
process group, the sampler, the optimiser and learning-rate schedule, a checkpoint every
epoch, resuming, early stopping on the validation metric and rank-0 saving. The family
supplies the rest, from the job file alone (a worker has nothing else): the module, the
datasets, the loss, the validation metric, the optimiser's parameter groups and how the
best weights are written as a model directory. A CNN or a text encoder is one more
subclass.

The job's ``params`` is the family's hyper-parameter dataclass; the worker reads its
``learning_rate``, ``optimizer``, ``weight_decay``, ``batch_size`` and ``lr_schedule``.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from e2eai.training.family import Family

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from e2eai.training.torch_job import TorchJob


class TorchFamily(Family):
    """A family trained by the DDP worker: binary logits, BCE loss, ROC-AUC by default."""

    trains_with_ddp = True
    evaluation_batch: ClassVar[int] = 4096
    """Rows per forward pass when the worker scores a dataset not held as whole tensors
    (a text encoder's attention over thousands of messages needs GBs at once)."""

    @abstractmethod
    def params_from_dict(self, raw: dict[str, Any]) -> Any:
        """The family's hyper-parameter object from its JSON form (a job file's ``params``)."""

    @abstractmethod
    def build_module(self, job: TorchJob) -> nn.Module:
        """A freshly initialised module (reproducible from ``job.seed``)."""

    @abstractmethod
    def dataset(self, job: TorchJob, path: str) -> Dataset:
        """The rows of one Parquet input as items ``(*module inputs, target)``."""

    @abstractmethod
    def save_model(self, state: dict[str, torch.Tensor], job: TorchJob, model_dir: Path) -> None:
        """Write the best weights (and what loading them needs) into ``model_dir`` (rank 0)."""

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy of logits against 0/1 targets."""
        from torch import nn

        return nn.functional.binary_cross_entropy_with_logits(logits, target)

    def metric(self, target: np.ndarray, logits: torch.Tensor) -> float:
        """Validation metric, higher is better: ROC-AUC of the predicted probabilities."""
        import torch
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(target, torch.sigmoid(logits).numpy()))

    def parameter_groups(self, module: nn.Module, job: TorchJob) -> list[dict[str, Any]]:
        """Optimiser parameter groups, each with its ``lr``: by default one, at the job's rate."""
        params = [p for p in module.parameters() if p.requires_grad]
        return [{"params": params, "lr": job.params.learning_rate}]
