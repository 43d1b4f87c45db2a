"""``Family``: how one kind of model is trained, loaded, exported to ONNX and warm-started.

A family is a small object (registered in :mod:`e2eai.training.families`) that the stages
ask instead of comparing family names: ``run_training`` fits it (after an HPO search over
its ``search_space`` when it has one, or from a registered parent when it supports warm
start), the evaluation scores what it loads, and the export converts that to ONNX and
checks parity against it. Families that train with torch subclass
:class:`~e2eai.training.torch_family.TorchFamily`, which the DDP worker drives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from e2eai.errors import TrainingConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from e2eai.config import TrainingSettings
    from e2eai.schema import Kind
    from e2eai.tasks import Task
    from e2eai.training.hpo import HpoResult
    from e2eai.training.search_space import ParamSpec
    from e2eai.training.torch_job import TorchRunSummary


class LoadedModel(ABC):
    """A trained model loaded from its directory: raw frame rows → P(positive class)."""

    family: str
    model_dir: Path

    @property
    @abstractmethod
    def input_kinds(self) -> dict[str, Kind]:
        """The input columns the model reads and their kinds."""

    @abstractmethod
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive) as float64 [N] for every row of ``frame`` (raw model input columns)."""


@dataclass(frozen=True)
class FitRequest:
    """What a family needs to fit one model: the task, its data parts and the settings.

    The model lands in ``work_dir / "model"``; the family may keep what it needs to
    resume (data copies, checkpoints, logs) elsewhere in ``work_dir``. ``overrides`` are
    hyper-parameters that replace the settings' (an HPO search's best point).
    """

    task: Task
    train: pd.DataFrame
    validation: pd.DataFrame
    training: TrainingSettings
    work_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        return self.work_dir / "model"


@dataclass(frozen=True)
class FittedModel:
    """A fitted model's directory, the parameters to record, and the run's details."""

    model_dir: Path
    params: dict[str, Any]
    torch_summary: TorchRunSummary | None = None


class Family(ABC):
    """One model family. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    """Registered name (``training.family``, ``model_info.json``, the registry's family)."""
    title: ClassVar[str]
    """The family in words, for gate names and messages (``logistic regression``)."""
    model_files: ClassVar[tuple[str, ...]]
    """Files of a model directory besides ``model_info.json``."""
    trains_with_ddp: ClassVar[bool] = False
    """Trains through the torch DDP worker (``training.workers`` processes)."""
    supports_warm_start: ClassVar[bool] = False
    search_space: ClassVar[tuple[ParamSpec, ...] | None] = None
    """Hyper-parameters an HPO search may vary (names of ``TrainingSettings``); None: none."""

    @abstractmethod
    def fit(self, request: FitRequest) -> FittedModel:
        """Train from scratch into ``request.model_dir``."""

    @abstractmethod
    def load(self, model_dir: Path) -> LoadedModel:
        """The model saved in ``model_dir`` (ModelArtifactError when files are missing)."""

    @abstractmethod
    def export_onnx(
        self,
        model: LoadedModel,
        out_path: Path,
        task: Task,
        reference: pd.DataFrame | None = None,
    ) -> Path:
        """One ONNX graph under the serving contract: the task's inputs → ``probability``.

        A family whose model splits its logit by input also outputs ``contributions``,
        centred on ``reference`` rows (:mod:`e2eai.export.explanation`); others ignore them.
        """

    def warm_start(self, request: FitRequest, parent_dir: Path) -> FittedModel:
        """Continue training the model in ``parent_dir`` on the request's data."""
        raise TrainingConfigError(f"the {self.name} family cannot be warm-started")

    def search(
        self,
        request: FitRequest,
        out_dir: Path,
        n_trials: int | None,
        timeout_seconds: float | None,
    ) -> HpoResult:
        """Search ``search_space`` on the request's train/validation parts (trials in out_dir)."""
        raise TrainingConfigError(f"the {self.name} family has no hyper-parameter search space")
