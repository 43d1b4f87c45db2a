"""The description of one torch training run, as plain JSON that travels to every worker.

Training data travels as Parquet paths, never as pickled frames: a torchrun worker (or a
Kubeflow Trainer pod) only needs the job file and the files it names. ``family`` names the
:class:`~e2eai.training.torch_family.TorchFamily` that builds the module and reads the
data; ``spec_path`` is that family's description of the inputs (the tabular spec).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from e2eai.training.families import torch_family


@dataclass(frozen=True)
class TorchJob:
    """Inputs of one run; ``run_dir`` receives checkpoints, TensorBoard logs and the model."""

    train_path: str
    validation_path: str
    spec_path: str
    run_dir: str
    params: Any
    """The family's hyper-parameters (a dataclass; ``MLPParams`` for torch_mlp)."""
    label: str
    """The 0/1 target column of the Parquet inputs."""
    family: str
    """The registered torch family that trains it."""
    epochs: int = 8
    patience: int = 2
    seed: int = 13
    init_weights: str | None = None  # a state dict to start from (warm start)
    freeze_embeddings: bool = False

    def fingerprint(self) -> str:
        """Identity of the run's inputs: a checkpoint only resumes the same run."""
        payload = asdict(self)
        payload.pop("run_dir")
        for key in ("train_path", "validation_path", "spec_path", "init_weights"):
            path = payload[key]
            if path is not None and Path(path).is_file():
                payload[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The job as plain JSON values (``params`` as a dict)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TorchJob:
        """The job ``to_dict`` described; the family turns ``params`` back into its dataclass."""
        params = torch_family(raw["family"]).params_from_dict(raw["params"])
        return cls(**{**raw, "params": params})

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> TorchJob:
        return cls.from_dict(json.loads(path.read_text()))


@dataclass(frozen=True)
class TorchRunSummary:
    """What a finished run reports (written by rank 0 as ``summary.json``)."""

    model_dir: str
    world_size: int
    epochs_run: int
    best_epoch: int
    best_validation_auc: float
    stopped_early: bool
    resumed_from_epoch: int
    samples_per_second: float
    train_seconds: float
    history: list[dict[str, float]]

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> TorchRunSummary:
        return cls(**json.loads(path.read_text()))
