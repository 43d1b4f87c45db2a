"""The tabular Wide & Deep MLP family (``torch_mlp``): DDP training, HPO, warm start, ONNX.

Inputs are described by a :class:`~e2eai.training.tabular_spec.TabularSpec` learned from
the training part (vocabularies, numeric statistics, the task's crosses) and saved with the
weights; the module is :class:`~e2eai.training.mlp.TabularMLP`. torch is imported only when
a model is trained, loaded or exported, never by importing the family.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from e2eai.errors import ModelArtifactError
from e2eai.training.columns import labels
from e2eai.training.family import FitRequest, FittedModel, LoadedModel
from e2eai.training.model_io import read_info, write_info
from e2eai.training.search_space import SEARCH_SPACE
from e2eai.training.tabular_spec import MLPParams, TabularSpec
from e2eai.training.torch_family import TorchFamily

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from e2eai.config import TrainingSettings
    from e2eai.schema import Kind
    from e2eai.tasks import Task
    from e2eai.training.ddp_loop import EpochCallback
    from e2eai.training.hpo import HpoResult
    from e2eai.training.search_space import ParamSpec
    from e2eai.training.torch_job import TorchJob, TorchRunSummary

WEIGHTS_FILE = "model.pt"
SPEC_FILE = "model_spec.json"
INPUT_SPEC_FILE = "input_spec.json"


def mlp_params(training: TrainingSettings, **overrides: Any) -> MLPParams:
    """MLP hyper-parameters from settings, with optional overrides (HPO, fine-tuning)."""
    params = MLPParams(
        learning_rate=training.learning_rate,
        hidden_width=training.hidden_width,
        depth=training.depth,
        dropout=training.dropout,
        optimizer=training.optimizer,
        batch_size=training.batch_size,
        embedding_dim=training.embedding_dim,
        weight_decay=training.weight_decay,
        lr_schedule=training.lr_schedule,
        wide=training.wide,
        cross_buckets=training.cross_buckets,
        deep_lr_factor=training.deep_lr_factor,
        numeric_bins=training.numeric_bins,
    )
    return replace(params, **overrides) if overrides else params


def fit_mlp(
    spec: TabularSpec,
    label: str,
    train_path: Path,
    validation_path: Path,
    run_dir: Path,
    training: TrainingSettings,
    workers: int,
    init_weights: Path | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> TorchRunSummary:
    """Train (or resume) the MLP described by ``spec`` into ``run_dir/model``."""
    from e2eai.training.torch_training import fit_torch

    run_dir.mkdir(parents=True, exist_ok=True)
    return fit_torch(
        WideDeepFamily.name,
        spec.save(run_dir / INPUT_SPEC_FILE),
        spec.params,
        label,
        train_path,
        validation_path,
        run_dir,
        training,
        workers=workers,
        init_weights=init_weights,
        on_epoch_end=on_epoch_end,
    )


@dataclass
class MLPModel(LoadedModel):
    """A trained TabularMLP and its spec."""

    family: str
    model_dir: Path
    module: Any
    spec: TabularSpec

    @property
    def input_kinds(self) -> dict[str, Kind]:
        return self.spec.kinds()

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        from e2eai.training.mlp import mlp_proba

        return mlp_proba(self.module, self.spec, frame).astype(np.float64)


class WideDeepFamily(TorchFamily):
    """Wide & Deep MLP over the task's numeric and categorical inputs."""

    name = "torch_mlp"
    title = "Wide & Deep MLP"
    model_files = (WEIGHTS_FILE, SPEC_FILE)
    supports_warm_start = True
    search_space: ClassVar[tuple[ParamSpec, ...] | None] = SEARCH_SPACE

    # -- the family ----------------------------------------------------------------------------

    def fit(self, request: FitRequest) -> FittedModel:
        from e2eai.training.torch_training import write_inputs

        t, task = request.training, request.task
        train_path, validation_path = write_inputs(
            request.train, request.validation, request.work_dir / "data"
        )
        params = mlp_params(t, **request.overrides)
        spec = TabularSpec.fit(request.train, params, task)
        summary = fit_mlp(
            spec, task.label, train_path, validation_path, request.work_dir, t, workers=t.workers
        )
        model_dir = Path(summary.model_dir)
        info_params = asdict(params)
        write_info(model_dir, self.name, task, info_params)
        return FittedModel(model_dir, info_params, summary)

    def search(
        self,
        request: FitRequest,
        out_dir: Path,
        n_trials: int | None,
        timeout_seconds: float | None,
    ) -> HpoResult:
        """Optuna trials in-process (one worker each), pruned on the per-epoch validation AUC."""
        from e2eai.training.hpo import run_study
        from e2eai.training.torch_training import write_inputs

        t, task = request.training, request.task
        train_path, validation_path = write_inputs(
            request.train, request.validation, request.work_dir / "data"
        )
        # Vocabularies, statistics, crosses and bin edges are learned once, before the trials.
        base = TabularSpec.fit(request.train, mlp_params(t), task)

        def objective(point: dict[str, Any], trial_dir: Path, report: EpochCallback) -> float:
            spec = base.with_params(mlp_params(t, **point))
            summary = fit_mlp(
                spec,
                task.label,
                train_path,
                validation_path,
                trial_dir,
                t,
                workers=1,
                on_epoch_end=report,
            )
            return summary.best_validation_auc

        assert self.search_space is not None
        return run_study(
            objective,
            self.search_space,
            out_dir,
            seed=t.seed,
            n_trials=n_trials,
            timeout_seconds=timeout_seconds,
            study_name="e2eai-mlp",
        )

    def warm_start(self, request: FitRequest, parent_dir: Path) -> FittedModel:
        from e2eai.training.finetune import finetune

        summary = finetune(
            parent_dir,
            request.train,
            request.validation,
            request.work_dir,
            request.training,
            request.task,
        )
        model_dir = Path(summary.model_dir)
        return FittedModel(model_dir, read_info(model_dir)["params"], summary)

    def load(self, model_dir: Path) -> MLPModel:
        for name in self.model_files:
            if not (model_dir / name).is_file():
                raise ModelArtifactError(f"{model_dir}: torch model lacks {name}")
        from e2eai.training.mlp import load_mlp

        module, spec = load_mlp(model_dir)
        return MLPModel(self.name, model_dir, module, spec)

    def export_onnx(
        self,
        model: LoadedModel,
        out_path: Path,
        task: Task,
        reference: pd.DataFrame | None = None,
    ) -> Path:
        from e2eai.export.torch_onnx import torch_to_onnx

        if not isinstance(model, MLPModel):
            raise ModelArtifactError(f"{model.model_dir}: not a {self.name} model")
        name = f"{task.name}_{self.name}"
        return torch_to_onnx(model.module, model.spec, out_path, task, name, reference)

    # -- what the DDP worker asks ----------------------------------------------------------------

    def params_from_dict(self, raw: dict[str, Any]) -> MLPParams:
        return MLPParams(**raw)

    def build_module(self, job: TorchJob) -> nn.Module:
        from e2eai.training.mlp import build_model

        return build_model(TabularSpec.load(Path(job.spec_path)), job.seed)

    def dataset(self, job: TorchJob, path: str) -> Dataset:
        import torch
        from torch.utils.data import TensorDataset

        spec = self.tabular_spec(job)
        frame = pd.read_parquet(path)
        numeric, indices = spec.encode(frame)
        y = labels(frame, job.label, path).astype(np.float32)
        return TensorDataset(
            torch.from_numpy(numeric), torch.from_numpy(indices), torch.from_numpy(y)
        )

    def tabular_spec(self, job: TorchJob) -> TabularSpec:
        """The job's description of the inputs (vocabularies, statistics) the rows encode by."""
        return TabularSpec.load(Path(job.spec_path))

    def parameter_groups(self, module: Any, job: TorchJob) -> list[dict[str, Any]]:
        """Wide and deep parts at their own learning rates; frozen embeddings left out.

        ``module`` is the TabularMLP ``build_module`` made.
        """
        if job.freeze_embeddings:  # per-category tables of both paths; cross buckets still learn
            for emb in [*module.embeddings, *getattr(module, "wide_embeddings", [])]:
                emb.weight.requires_grad_(False)
        wide, deep = module.parameter_groups()
        lr = job.params.learning_rate
        groups = [
            {"params": [p for p in wide if p.requires_grad], "lr": lr},
            {"params": [p for p in deep if p.requires_grad], "lr": lr * job.params.deep_lr_factor},
        ]
        return [g for g in groups if g["params"]]

    def save_model(self, state: dict[str, torch.Tensor], job: TorchJob, model_dir: Path) -> None:
        import torch

        model_dir.mkdir(parents=True, exist_ok=True)
        torch.save(state, model_dir / WEIGHTS_FILE)
        TabularSpec.load(Path(job.spec_path)).save(model_dir / SPEC_FILE)
