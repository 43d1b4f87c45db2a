"""Structured pruning of the image CNN for the edge: fewer filters, a smaller and faster graph.

Each convolution's output filters are ranked by the L1 norm of their weights (Li et al.,
"Pruning Filters for Efficient ConvNets", 2017) and the top ``keep_fraction`` kept. The
network is then *rebuilt* as a :class:`~e2eai.training.cnn.FashionCnn` with those channel
counts — no masks, so parameters, ONNX bytes and multiply-adds all shrink — and the kept
filters' weights are copied over with everything that indexes the same channels: the
filter's bias, its batch-norm entries (scale, shift, running mean and variance), the next
convolution's input slices and the linear head's input columns (``Flatten`` lays features
out channel-major, so channel ``c`` owns columns ``c·h·w … (c+1)·h·w − 1``). With
``keep_fraction=1`` the rebuilt network computes exactly what the original did.

The pruned network is fine-tuned briefly through the platform's own torch training path
(:func:`e2eai.training.torch_training.fit_torch`: the CNN family's loss and batches,
``training.workers`` processes), from its pruned weights, for ``finetune_epochs`` epochs at
the parent's learning rate × ``finetune_lr_factor``; the worker keeps the epoch with the best
validation accuracy (epoch 0 is the pruned start). Validation images come from the training
part, never from the holdout.

The pruned graph replaces the fp32 one only if it is smaller and loses at most
``max_accuracy_loss`` holdout accuracy (default one point: halving the filters removes 56 %
of the parameters and ~70 % of the multiply-adds, a larger trade than int8's, which is held
to half a point). :func:`compression_report` sets fp32, int8 and pruned side by side, their
batch-1 latencies measured in the same interleaved rounds so that they compare on shared
cores. :func:`prune_for_export` is what ``export.prune`` runs inside an image export: the
fine-tuning rows are the export's calibration (training) rows, and the served graph is the
smallest variant within its bound (:data:`EDGE_RULE`).

Measured (CNN defaults trained 6 epochs on the first 12,000 training images, validated on the
next 3,000, holdout the 10,000 test images, one worker, seed 13): fp32 88.41 %, 20,586
parameters, 97,711 bytes; pruned to (8, 16) channels, 9,146 parameters, 52,138 bytes,
57.76 % straight after the surgery. Fine-tuned 2 epochs at the warm start's 0.3 × learning
rate: 85.92 % (refused); 2 epochs at 1×: 86.97 % (refused); 4 epochs at 1× (the default):
87.88 %, −0.53 points, kept. Keeping 75 % of the filters and 2 epochs at 1×: 88.16 %,
14,578 parameters, 73,771 bytes. Batch-1 latency is ~0.03–0.05 ms for every variant: at this
size ONNX Runtime's per-call overhead, not the arithmetic, dominates.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from e2eai.config import PruningPolicy
from e2eai.export.compression import CompressionDecision, decide_compressed
from e2eai.export.image_onnx import (
    INPUT_NAME,
    PARITY_ATOL,
    ImageQuantizationReport,
    VariantReport,
    batch1_latency_ms,
    check_image_parity,
    export_image_classifier,
    onnx_probabilities,
    quantize_and_decide,
    session,
)
from e2eai.jsonable import to_jsonable

if TYPE_CHECKING:
    import torch
    from torch import nn

    from e2eai.config import TrainingSettings
    from e2eai.training.cnn import FashionCnn
    from e2eai.training.cnn_family import CnnModel, CnnParams
    from e2eai.training.torch_job import TorchRunSummary

KEEP_FRACTION: float = PruningPolicy().keep_fraction
MAX_ACCURACY_LOSS: float = PruningPolicy().max_accuracy_loss
"""The pruned model is kept only within one accuracy point of fp32 on the holdout."""


@dataclass
class PrunedCnn:
    """A rebuilt, smaller CNN (eval mode) and which filters of the original it kept."""

    module: FashionCnn
    params: CnnParams
    kept_filters: tuple[tuple[int, ...], ...]
    """Per convolution, the original indices of the kept filters (ascending)."""


def count_parameters(module: nn.Module) -> int:
    """Trainable and non-trainable parameters (buffers such as running statistics excluded)."""
    return sum(p.numel() for p in module.parameters())


def filter_l1_norms(conv: nn.Conv2d) -> np.ndarray:
    """The L1 norm of each output filter's weights ``[out_channels]``."""
    return conv.weight.detach().abs().flatten(1).sum(1).numpy()


def strongest_filters(conv: nn.Conv2d, keep_fraction: float) -> list[int]:
    """Indices (ascending) of the ``ceil(keep_fraction · n)`` filters of largest L1 norm.

    Ties break towards the lower index (a stable sort), so the choice is deterministic.
    """
    norms = filter_l1_norms(conv)
    keep = max(1, math.ceil(keep_fraction * len(norms) - 1e-9))
    order = np.argsort(-norms, kind="stable")
    return sorted(int(i) for i in order[:keep])


def prune_cnn(
    module: FashionCnn,
    params: CnnParams,
    keep_fraction: float,
    classes: int,
    image_size: tuple[int, int] = (28, 28),
) -> PrunedCnn:
    """Rebuild ``module`` with the strongest ``keep_fraction`` of each convolution's filters.

    ``params`` are the original's hyper-parameters; the rebuilt network shares all of them but
    ``channels``. Raises ValueError when ``keep_fraction`` is not in (0, 1].
    """
    import torch
    from torch import nn

    from e2eai.training.cnn import FashionCnn

    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    convs = [m for m in module.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in module.features if isinstance(m, nn.BatchNorm2d)]
    kept = [strongest_filters(conv, keep_fraction) for conv in convs]
    c1, c2 = (len(k) for k in kept)  # FashionCnn has two convolution blocks
    pruned_params = replace(params, channels=(c1, c2))
    pruned = FashionCnn(pruned_params, classes, *image_size)
    spatial = pruned.head.in_features // len(kept[-1])  # positions per channel after pooling
    if module.head.in_features != convs[-1].out_channels * spatial:
        raise ValueError(
            f"the CNN's head reads {module.head.in_features} features, not "
            f"{convs[-1].out_channels} channels × {spatial} positions: pass the image_size "
            "it was built for"
        )
    new_convs = [m for m in pruned.features if isinstance(m, nn.Conv2d)]
    new_norms = [m for m in pruned.features if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        previous = torch.arange(convs[0].in_channels)
        for conv, norm, new_conv, new_norm, keep in zip(
            convs, norms, new_convs, new_norms, kept, strict=True
        ):
            rows = torch.tensor(keep)
            new_conv.weight.copy_(conv.weight[rows][:, previous])
            _bias(new_conv).copy_(_bias(conv)[rows])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(new_norm, name).copy_(getattr(norm, name)[rows])
            if norm.num_batches_tracked is not None and new_norm.num_batches_tracked is not None:
                new_norm.num_batches_tracked.copy_(norm.num_batches_tracked)
            previous = rows
        columns = (previous[:, None] * spatial + torch.arange(spatial)).reshape(-1)
        pruned.head.weight.copy_(module.head.weight[:, columns])
        _bias(pruned.head).copy_(_bias(module.head))
    pruned.eval()
    return PrunedCnn(pruned, pruned_params, tuple(tuple(k) for k in kept))


def _bias(layer: nn.Conv2d | nn.Linear) -> torch.Tensor:
    if layer.bias is None:  # FashionCnn builds every layer with one
        raise ValueError(f"prune_cnn expects a {type(layer).__name__} with a bias")
    return layer.bias


def fit_cnn_on_arrays(
    params: CnnParams,
    classes: int,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    validation_images: np.ndarray,
    validation_labels: np.ndarray,
    work_dir: Path,
    training: TrainingSettings,
    init_state: dict[str, Any] | None = None,
) -> tuple[FashionCnn, TorchRunSummary]:
    """Train a :class:`FashionCnn` of ``params`` on image arrays through the platform's torch
    worker (:func:`~e2eai.training.torch_training.fit_torch`, ``training.workers`` processes),
    from ``init_state`` when given; returns the best-validation-epoch module in eval mode.

    Images are model inputs (float ``[N, 1, H, W]`` in [0, 1]) or uint8 pixels ``[N, H, W]``;
    ``work_dir`` must be fresh (a checkpoint there would be resumed).
    """
    import torch

    from e2eai.training.cnn import FashionCnn
    from e2eai.training.cnn_family import WEIGHTS_FILE
    from e2eai.training.image_families import as_model_input
    from e2eai.training.torch_training import fit_torch

    data_dir = work_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train = as_model_input(train_images)
    paths = {}
    for part, images, labels in (
        ("train", train, train_labels),
        ("validation", as_model_input(validation_images), validation_labels),
    ):
        paths[part] = data_dir / f"{part}.npz"
        np.savez(paths[part], images=images, labels=np.asarray(labels, dtype=np.int64))
    shape = list(train.shape[1:])
    spec_path = data_dir / "cnn_input.json"
    spec_path.write_text(json.dumps({"classes": classes, "image_shape": shape, "task": "arrays"}))
    init = None
    if init_state is not None:
        init = data_dir / "init_weights.pt"
        torch.save(init_state, init)
    summary = fit_torch(
        "cnn",
        spec_path,
        params,
        "label",
        paths["train"],
        paths["validation"],
        work_dir,
        training,
        training.workers,
        init_weights=init,
    )
    module = FashionCnn(params, classes, *shape[1:])
    state = torch.load(Path(summary.model_dir) / WEIGHTS_FILE, weights_only=True)
    module.load_state_dict(state)
    return module.eval(), summary


def finetune_pruned(
    pruned: PrunedCnn,
    classes: int,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    validation_images: np.ndarray,
    validation_labels: np.ndarray,
    work_dir: Path,
    training: TrainingSettings,
    epochs: int,
    lr_factor: float = 1.0,
) -> tuple[PrunedCnn, TorchRunSummary]:
    """Fine-tune ``pruned`` for ``epochs`` epochs at the original learning rate ×
    ``lr_factor``; the best validation epoch wins, the unchanged pruned start (epoch 0)
    included."""
    params = replace(pruned.params, learning_rate=pruned.params.learning_rate * lr_factor)
    module, summary = fit_cnn_on_arrays(
        params,
        classes,
        train_images,
        train_labels,
        validation_images,
        validation_labels,
        work_dir,
        training.model_copy(update={"epochs": epochs}),
        init_state=pruned.module.state_dict(),
    )
    return PrunedCnn(module, pruned.params, pruned.kept_filters), summary


def decide_pruned(
    fp32_accuracy: float,
    pruned_accuracy: float,
    fp32_bytes: int,
    pruned_bytes: int,
    max_accuracy_loss: float = MAX_ACCURACY_LOSS,
    variant: str = "pruned",
) -> CompressionDecision:
    """Keep the pruned model only if it is smaller and loses at most ``max_accuracy_loss``.

    ``variant`` names the graph in the reason (``"pruned int8"``: the pruned graph
    quantised, judged against fp32 by the same bound)."""
    return decide_compressed(
        "accuracy",
        fp32_accuracy,
        pruned_accuracy,
        fp32_bytes,
        pruned_bytes,
        max_accuracy_loss,
        variant=variant,
        subject="pruning" if variant == "pruned" else f"the {variant} model",
        points=True,
    )


@dataclass(frozen=True)
class PruningReport:
    """fp32 vs pruned (after fine-tuning), the surgery's figures and the decision."""

    keep: bool
    reason: str
    fp32: VariantReport
    pruned: VariantReport
    accuracy_loss: float
    max_accuracy_loss: float
    keep_fraction: float
    channels_before: tuple[int, ...]
    channels_after: tuple[int, ...]
    parameters_before: int
    parameters_after: int
    accuracy_before_finetune: float
    """Holdout accuracy of the pruned network straight after the surgery."""
    finetune_epochs: int
    finetune_learning_rate: float
    finetune_best_epoch: int
    """0 when no fine-tuning epoch beat the pruned start on validation."""
    finetune_seconds: float
    parity_max_abs_diff: float
    """Pruned ONNX graph vs the pruned torch module, probabilities on the holdout."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))


def prune_and_decide(
    model: CnnModel,
    fp32_path: Path,
    out_dir: Path,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    validation_images: np.ndarray,
    validation_labels: np.ndarray,
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    training: TrainingSettings,
    policy: PruningPolicy | None = None,
) -> PruningReport:
    """Prune ``model`` (whose fp32 graph is ``fp32_path``), fine-tune it on the training
    images, export ``out_dir/model.pruned.onnx``, check its parity, measure both graphs on the
    holdout and decide by ``policy``. ``training`` gives the fine-tuning's workers, seed and
    patience; the fine-tuning run lives in ``out_dir/pruning_run``.
    """
    policy = policy or PruningPolicy()
    out_dir.mkdir(parents=True, exist_ok=True)
    pruned = prune_cnn(model.module, model.params, policy.keep_fraction, model.classes)
    holdout_labels = np.asarray(holdout_labels)
    before = _accuracy(_torch_probabilities(pruned.module, holdout_images), holdout_labels)
    best_epoch, seconds = 0, 0.0
    if policy.finetune_epochs > 0:
        started = time.perf_counter()
        pruned, summary = finetune_pruned(
            pruned,
            model.classes,
            train_images,
            train_labels,
            validation_images,
            validation_labels,
            out_dir / "pruning_run",
            training,
            policy.finetune_epochs,
            policy.finetune_lr_factor,
        )
        best_epoch, seconds = summary.best_epoch, time.perf_counter() - started
    pruned_path = export_image_classifier(
        pruned.module, out_dir / "model.pruned.onnx", pruned.params, model.classes
    )
    torch_probabilities = _torch_probabilities(pruned.module, holdout_images)
    parity = check_image_parity(torch_probabilities, pruned_path, holdout_images, PARITY_ATOL)
    fp32_session, pruned_session = session(fp32_path), session(pruned_path)
    acc32 = _accuracy(onnx_probabilities(fp32_session, holdout_images), holdout_labels)
    acc_pruned = _accuracy(onnx_probabilities(pruned_session, holdout_images), holdout_labels)
    sizes = fp32_path.stat().st_size, pruned_path.stat().st_size
    decision = decide_pruned(acc32, acc_pruned, *sizes, policy.max_accuracy_loss)
    latency = batch1_latency_ms(fp32_session, holdout_images)
    return PruningReport(
        keep=decision.keep,
        reason=decision.reason,
        fp32=VariantReport(str(fp32_path), sizes[0], latency, acc32),
        pruned=VariantReport(
            str(pruned_path),
            sizes[1],
            batch1_latency_ms(pruned_session, holdout_images),
            acc_pruned,
        ),
        accuracy_loss=acc32 - acc_pruned,
        max_accuracy_loss=policy.max_accuracy_loss,
        keep_fraction=policy.keep_fraction,
        channels_before=tuple(model.params.channels),
        channels_after=tuple(pruned.params.channels),
        parameters_before=count_parameters(model.module),
        parameters_after=count_parameters(pruned.module),
        accuracy_before_finetune=before,
        finetune_epochs=policy.finetune_epochs,
        finetune_learning_rate=model.params.learning_rate * policy.finetune_lr_factor,
        finetune_best_epoch=best_epoch,
        finetune_seconds=round(seconds, 2),
        parity_max_abs_diff=parity.max_abs_diff,
    )


def _torch_probabilities(module: nn.Module, images: np.ndarray) -> np.ndarray:
    import torch

    from e2eai.training.image_families import as_model_input

    x = torch.from_numpy(as_model_input(images))
    module.eval()
    with torch.no_grad():
        chunks = [torch.softmax(module(x[i : i + 2048]), dim=1) for i in range(0, len(x), 2048)]
    return torch.cat(chunks).numpy().astype(np.float64)


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((probabilities.argmax(1) == labels).mean())


# -- fp32 vs int8 vs pruned ----------------------------------------------------------------

EDGE_RULE = (
    "serve the smallest graph (in bytes) whose holdout accuracy is within its variant's bound "
    "of fp32's (int8: its max_accuracy_loss; pruned and pruned_int8: the pruning policy's) "
    "and that is smaller than fp32; fp32 when none is"
)
"""How :func:`compression_report` picks ``edge_choice`` (and an export its served file)."""


@dataclass(frozen=True)
class CompressionVariant:
    """One graph an edge device could run: its size, speed, quality and whether it is kept."""

    name: str  # "fp32" | "int8" | "pruned" | "pruned_int8"
    path: str
    bytes: int
    latency_ms_batch1: float
    accuracy: float
    kept: bool
    reason: str
    parameters: int | None = None
    """The network's parameters (int8 holds the same ones, a byte each); None: unknown."""
    max_accuracy_loss: float | None = None
    """The holdout accuracy this variant may lose against fp32 (None: fp32 itself)."""


@dataclass(frozen=True)
class CompressionReport:
    """fp32, int8, pruned (and pruned int8) side by side; ``edge_choice`` is the smallest
    kept variant (:data:`EDGE_RULE`)."""

    variants: tuple[CompressionVariant, ...]
    edge_choice: str
    holdout_images: int
    latency_rounds: int
    rule: str = EDGE_RULE

    def variant(self, name: str) -> CompressionVariant:
        """The variant called ``name`` (KeyError if the report has none)."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))

    def save(self, path: Path) -> Path:
        """Write the report as JSON (the run's ``compression_report.json``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def compression_report(
    quantization: ImageQuantizationReport | None,
    pruning: PruningReport,
    holdout_images: np.ndarray,
    rounds: int = 5,
    repeats: int = 40,
    pruned_quantization: ImageQuantizationReport | None = None,
) -> CompressionReport:
    """fp32 / int8 / pruned (/ pruned int8, when ``pruned_quantization`` quantised the pruned
    graph) with the accuracies and decisions their reports hold, and batch-1 latencies
    re-measured here in ``rounds`` interleaved rounds of ``repeats`` runs each (median of
    all), so that a busy moment on shared cores slows every variant alike.

    The pruned int8 graph is judged against fp32 by the pruning bound (the int8 step gets no
    allowance of its own on top). Raises ValueError when the reports scored a shared graph
    differently (they were measured on different images, so their accuracies do not compare).
    """
    if quantization is not None and quantization.fp32.accuracy != pruning.fp32.accuracy:
        raise ValueError(
            f"the int8 report scores fp32 at {quantization.fp32.accuracy:.4f} and the pruning "
            f"report at {pruning.fp32.accuracy:.4f}: measure both on the same holdout images"
        )
    if (
        pruned_quantization is not None
        and pruned_quantization.fp32.accuracy != pruning.pruned.accuracy
    ):
        raise ValueError(
            f"the pruned int8 report scores the pruned graph at "
            f"{pruned_quantization.fp32.accuracy:.4f} and the pruning report at "
            f"{pruning.pruned.accuracy:.4f}: measure both on the same holdout images"
        )
    before, after, bound = pruning.parameters_before, pruning.parameters_after, None
    rows: list[tuple[str, VariantReport, bool, str, int | None, float | None]] = [
        (
            "fp32",
            pruning.fp32,
            True,
            "the reference: served unless a compressed variant is kept",
            before,
            bound,
        )
    ]
    if quantization is not None:
        rows.append(
            (
                "int8",
                quantization.int8,
                quantization.keep,
                quantization.reason,
                before,
                quantization.max_accuracy_loss,
            )
        )
    rows.append(
        ("pruned", pruning.pruned, pruning.keep, pruning.reason, after, pruning.max_accuracy_loss)
    )
    if pruned_quantization is not None:
        graph = pruned_quantization.int8
        decision = decide_pruned(
            pruning.fp32.accuracy,
            graph.accuracy,
            pruning.fp32.bytes,
            graph.bytes,
            pruning.max_accuracy_loss,
            variant="pruned int8",
        )
        rows.append(
            (
                "pruned_int8",
                graph,
                decision.keep,
                decision.reason,
                after,
                pruning.max_accuracy_loss,
            )
        )
    latencies = interleaved_latencies(
        [Path(r[1].path) for r in rows], holdout_images, rounds, repeats
    )
    variants = tuple(
        CompressionVariant(name, v.path, v.bytes, latency, v.accuracy, kept, reason, n, loss)
        for (name, v, kept, reason, n, loss), latency in zip(rows, latencies, strict=True)
    )
    choice = min((v for v in variants if v.kept), key=lambda v: v.bytes)
    return CompressionReport(variants, choice.name, len(holdout_images), rounds)


def interleaved_latencies(
    paths: list[Path], images: np.ndarray, rounds: int = 5, repeats: int = 40
) -> list[float]:
    """Median batch-1 latency (ms) of each graph, measured in alternating rounds."""
    sessions = [session(p) for p in paths]
    samples: list[list[float]] = [[] for _ in paths]
    feeds = [images[i % len(images)][None].astype(np.float32) for i in range(repeats)]
    for sess in sessions:  # warm-up
        for feed in feeds[:10]:
            sess.run(None, {INPUT_NAME: feed})
    for _ in range(rounds):
        for sess, times in zip(sessions, samples, strict=True):
            for feed in feeds:
                started = time.perf_counter()
                sess.run(None, {INPUT_NAME: feed})
                times.append((time.perf_counter() - started) * 1000)
    return [float(np.median(times)) for times in samples]


# -- in the export (``export.prune``) ------------------------------------------------------

INT8_VARIANTS = ("int8", "pruned_int8")
FINETUNE_RUN = "pruning_run"
"""The fine-tuning run's directory under the export's, removed once the pruned graph is out."""


@dataclass(frozen=True)
class ExportPruning:
    """What ``export.prune`` did in an image export (``ExportResult.pruning``): the pruning
    report and the fp32 / int8 / pruned comparison that chose the served file, or why
    pruning did not apply (the export then serves what it would without it)."""

    applied: bool
    reason: str
    """Which variant is served and why, or why pruning did not apply."""
    served: str
    """The variant ``model.onnx`` is a copy of: fp32, int8, pruned or pruned_int8."""
    pruning: PruningReport | None = None
    pruned_quantization: ImageQuantizationReport | None = None
    """The pruned graph quantised (its own decision is against the pruned graph; whether it
    is served is decided against fp32 in ``compression``)."""
    compression: CompressionReport | None = None

    @property
    def served_quantized(self) -> bool:
        return self.served in INT8_VARIANTS

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))


def finetune_split(
    rows: int, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (training, validation) of a seeded shuffle: ``validation_fraction`` of
    the rows (at least one) validate the fine-tuning. Raises ValueError below two rows."""
    if rows < 2:
        raise ValueError(f"fine-tuning needs at least 2 training rows, got {rows}")
    order = np.random.default_rng(seed).permutation(rows)
    validation = min(rows - 1, max(1, round(rows * validation_fraction)))
    return np.sort(order[validation:]), np.sort(order[:validation])


def prune_for_export(
    model: CnnModel,
    fp32_path: Path,
    out_dir: Path,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    training: TrainingSettings,
    policy: PruningPolicy,
    quantization: ImageQuantizationReport | None,
    int8_calibration: np.ndarray | None = None,
) -> ExportPruning:
    """Prune ``model`` for an export into ``out_dir`` (beside ``fp32_path``) and pick the
    graph to serve by :data:`EDGE_RULE`.

    The pruned CNN is fine-tuned on ``train_images``/``train_labels`` (training rows:
    ``training.validation_fraction`` of them validate, seeded by ``training.seed``) and
    decided on the holdout; ``quantization`` is the fp32 graph's int8 report (None: no
    int8). With ``int8_calibration`` images the pruned graph is quantised too (static int8
    calibrated on them) and competes as ``pruned_int8``.
    """
    import shutil

    fit, validation = finetune_split(len(train_images), training.validation_fraction, training.seed)
    train_labels = np.asarray(train_labels)
    run_dir = out_dir / FINETUNE_RUN
    shutil.rmtree(run_dir, ignore_errors=True)  # a leftover checkpoint would be resumed
    try:
        report = prune_and_decide(
            model,
            fp32_path,
            out_dir,
            train_images[fit],
            train_labels[fit],
            train_images[validation],
            train_labels[validation],
            holdout_images,
            holdout_labels,
            training,
            policy,
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    pruned_quantization = None
    if int8_calibration is not None:
        pruned_quantization = quantize_and_decide(
            Path(report.pruned.path), int8_calibration, holdout_images, holdout_labels
        )
    compression = compression_report(
        quantization, report, holdout_images, pruned_quantization=pruned_quantization
    )
    chosen = compression.variant(compression.edge_choice)
    reason = (
        f"{chosen.name} is served: {chosen.reason}"
        if chosen.name != "fp32"
        else "fp32 is served: no compressed variant is both smaller and within its bound"
    )
    return ExportPruning(True, reason, chosen.name, report, pruned_quantization, compression)
