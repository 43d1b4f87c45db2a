"""The recurrent family (``torch_gru``): Wide & Deep plus a GRU over the task's sequence.

Same inputs, training loop (the DDP worker), wide/deep learning rates, warm start, ONNX
contract and parity gate as ``torch_mlp`` (:mod:`e2eai.training.mlp_family`); the module is
:class:`~e2eai.training.gru.RecurrentWideDeep`, whose deep part also reads a GRU's final state
over the steps the task names (``Task.sequence``: a plane's earlier legs of the day). A task
without a sequence cannot train it. torch is imported only when a model is trained, loaded or
exported.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from e2eai.errors import ModelArtifactError, TrainingConfigError
from e2eai.training.columns import feature_kinds
from e2eai.training.family import FitRequest, FittedModel
from e2eai.training.mlp_family import (
    INPUT_SPEC_FILE,
    WEIGHTS_FILE,
    MLPModel,
    WideDeepFamily,
    mlp_params,
)
from e2eai.training.model_io import write_info
from e2eai.training.tabular_spec import TabularSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

    from e2eai.training.gru import RecurrentSpec
    from e2eai.training.hpo import HpoResult
    from e2eai.training.torch_job import TorchJob

RECURRENT_SPEC_FILE = "recurrent_spec.json"


class RecurrentWideDeepFamily(WideDeepFamily):
    """Wide & Deep whose deep part also reads a GRU over the task's sequence of steps."""

    name = "torch_gru"
    title = "Wide & Deep with a GRU over the plane's earlier legs"
    model_files = (WEIGHTS_FILE, RECURRENT_SPEC_FILE)
    supports_warm_start = True
    search_space = None  # not searched (yet)

    def fit(self, request: FitRequest) -> FittedModel:
        from e2eai.training.gru import RecurrentSpec
        from e2eai.training.torch_training import fit_torch, write_inputs

        t, task = request.training, request.task
        if not task.sequence:
            raise TrainingConfigError(
                f"the {self.name} family reads a sequence and task {task.name!r} names none "
                "(its `sequence`); choose another family"
            )
        train_path, validation_path = write_inputs(
            request.train, request.validation, request.work_dir / "data"
        )
        params = mlp_params(t, **request.overrides)
        spec = RecurrentSpec(
            tabular=TabularSpec.fit(request.train, params, task),
            steps=[list(step) for step in task.sequence],
            hidden=t.sequence_hidden,
        )
        request.work_dir.mkdir(parents=True, exist_ok=True)
        summary = fit_torch(
            self.name,
            spec.save(request.work_dir / INPUT_SPEC_FILE),
            params,
            task.label,
            train_path,
            validation_path,
            request.work_dir,
            t,
            workers=t.workers,
        )
        model_dir = Path(summary.model_dir)
        info_params = {
            **asdict(params),
            "sequence_hidden": spec.hidden,
            "sequence_steps": len(spec.steps),
        }
        write_info(model_dir, self.name, task, info_params)
        return FittedModel(model_dir, info_params, summary)

    def search(
        self,
        request: FitRequest,
        out_dir: Path,
        n_trials: int | None,
        timeout_seconds: float | None,
    ) -> HpoResult:
        raise TrainingConfigError(f"the {self.name} family has no hyper-parameter search space")

    def warm_start(self, request: FitRequest, parent_dir: Path) -> FittedModel:
        """Continue the parent's weights as ``torch_mlp`` does (:mod:`e2eai.training.finetune`):
        its vocabularies and statistics, new categories appended with the unknown row's
        embeddings, the learning rate times ``training.finetune_lr_factor``."""
        import torch

        from e2eai.training.gru import RecurrentSpec
        from e2eai.training.mlp import resize_embeddings
        from e2eai.training.torch_training import fit_torch, write_inputs

        t, task = request.training, request.task
        parent = self.load(parent_dir)
        if parent.input_kinds != feature_kinds(task):
            raise TrainingConfigError(
                f"{parent_dir}: the parent's inputs differ from task {task.name!r}'s features "
                "(other feature settings, e.g. features.windows_hours?); train from scratch"
            )
        old = RecurrentSpec.load(parent_dir / RECURRENT_SPEC_FILE)
        params = replace(
            old.tabular.params,
            learning_rate=old.tabular.params.learning_rate * t.finetune_lr_factor,
        )
        tabular = old.tabular.extended_with(request.train).with_params(params)
        spec = replace(old, tabular=tabular)
        request.work_dir.mkdir(parents=True, exist_ok=True)
        init_path = request.work_dir / "init_weights.pt"
        if not init_path.exists():  # keep the bytes a checkpoint's fingerprint was taken from
            state = resize_embeddings(parent.module.state_dict(), old.tabular, tabular)
            torch.save(state, init_path)
        train_path, validation_path = write_inputs(
            request.train, request.validation, request.work_dir / "data"
        )
        summary = fit_torch(
            self.name,
            spec.save(request.work_dir / INPUT_SPEC_FILE),
            params,
            task.label,
            train_path,
            validation_path,
            request.work_dir,
            t,
            workers=t.workers,
            init_weights=init_path,
        )
        model_dir = Path(summary.model_dir)
        info_params = {
            **asdict(params),
            "sequence_hidden": spec.hidden,
            "sequence_steps": len(spec.steps),
            "warm_start": True,
            "finetune_lr_factor": t.finetune_lr_factor,
            "freeze_embeddings": t.freeze_embeddings,
        }
        write_info(model_dir, self.name, task, info_params)
        return FittedModel(model_dir, info_params, summary)

    def load(self, model_dir: Path) -> MLPModel:
        for name in self.model_files:
            if not (model_dir / name).is_file():
                raise ModelArtifactError(f"{model_dir}: {self.name} model lacks {name}")
        from e2eai.training.gru import load_recurrent

        module, spec = load_recurrent(model_dir, WEIGHTS_FILE, RECURRENT_SPEC_FILE)
        # Scored, explained and exported as the Wide & Deep model is: same inputs, same call.
        return MLPModel(self.name, model_dir, module, spec.tabular)

    # -- what the DDP worker asks ----------------------------------------------------------------

    def build_module(self, job: TorchJob) -> nn.Module:
        from e2eai.training.gru import build_recurrent

        return build_recurrent(self._spec(job), job.seed)

    def tabular_spec(self, job: TorchJob) -> TabularSpec:
        return self._spec(job).tabular

    def save_model(self, state: dict[str, torch.Tensor], job: TorchJob, model_dir: Path) -> None:
        import torch

        model_dir.mkdir(parents=True, exist_ok=True)
        torch.save(state, model_dir / WEIGHTS_FILE)
        self._spec(job).save(model_dir / RECURRENT_SPEC_FILE)

    @staticmethod
    def _spec(job: TorchJob) -> RecurrentSpec:
        from e2eai.training.gru import RecurrentSpec

        return RecurrentSpec.load(Path(job.spec_path))
