"""Image classifiers → ONNX (fp32, parity-checked) and int8 by static quantisation.

The serving contract of an image task: one input ``image``, float32 ``[N, 1, 28, 28]``
with intensities in [0, 1], and one output ``probabilities``, float32 ``[N, K]`` (softmax
over the classes). The module is exported in eval mode, so the training-only augmentation
layer is the identity and leaves no node in the graph.

int8: ONNX Runtime's *static* quantisation (QDQ format, int8 per-channel weights, uint8
activations), its activation ranges calibrated on training images — never holdout images,
which would leak the evaluation into the model. The int8 model replaces the fp32 one only if
it is smaller and loses at most ``max_accuracy_loss`` holdout accuracy (default 0.5 point);
the decision carries both accuracies, both sizes and both batch-1 latencies. With
``export.prune`` a CNN is also pruned (:mod:`e2eai.export.image_pruning`) and the served file
chosen among fp32, int8, pruned and pruned int8 (:func:`export_image_model_dir`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from e2eai.errors import ModelArtifactError
from e2eai.export.compression import CompressionDecision, decide_compressed, median_ms, session
from e2eai.export.parity import ParityReport, check_parity

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from e2eai.config import ExportSettings, TrainingSettings
    from e2eai.export.model_export import ExportResult
    from e2eai.tasks import Task

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
MAX_ACCURACY_LOSS = 0.005
"""int8 is kept only within half an accuracy point of fp32 on the holdout."""
CALIBRATION_IMAGES = 1_000
"""Training images whose activations set int8's ranges (stratification is not needed:
1,000 random Fashion-MNIST images cover every class ~100 times)."""
PARITY_ATOL = 1e-4


def export_image_classifier(
    module: nn.Module,
    out_path: Path,
    params: Any = None,
    classes: int = 10,
    image_shape: tuple[int, int, int] = (1, 28, 28),
) -> Path:
    """Write ``module`` (logits) with a softmax on top as one ONNX file with a dynamic batch."""
    import torch

    class _Probabilities(torch.nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.inner(image), dim=1)

    wrapper = _Probabilities(module).eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    example = torch.rand(2, *image_shape)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    program = torch.onnx.export(
        wrapper,
        (example,),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        external_data=False,
        dynamo=True,
        verbose=False,
    )
    if program is None:  # only the legacy exporter returns None; dynamo=True never does
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    program.save(str(out_path), external_data=False)
    return out_path


def onnx_probabilities(sess: Any, images: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Class probabilities ``[N, K]`` (float64) from a session, in batches."""
    out = [
        sess.run([OUTPUT_NAME], {INPUT_NAME: images[i : i + batch].astype(np.float32)})[0]
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(out).astype(np.float64)


def check_image_parity(
    framework: np.ndarray, onnx_path: Path, images: np.ndarray, atol: float = PARITY_ATOL
) -> ParityReport:
    """The ONNX graph's probabilities against the framework's for the same images."""
    return check_parity("cnn", framework, onnx_probabilities(session(onnx_path), images), atol)


def batch1_latency_ms(sess: Any, images: np.ndarray, repeats: int = 200) -> float:
    """Median wall time of one single-image inference (what one served request costs)."""
    return median_ms(lambda i: sess.run(None, {INPUT_NAME: images[i % len(images)][None]}), repeats)


def decide_int8(
    fp32_accuracy: float,
    int8_accuracy: float,
    fp32_bytes: int,
    int8_bytes: int,
    max_accuracy_loss: float = MAX_ACCURACY_LOSS,
) -> CompressionDecision:
    """Keep int8 only if it is smaller and loses at most ``max_accuracy_loss`` accuracy."""
    return decide_compressed(
        "accuracy",
        fp32_accuracy,
        int8_accuracy,
        fp32_bytes,
        int8_bytes,
        max_accuracy_loss,
        points=True,
    )


@dataclass(frozen=True)
class VariantReport:
    """One exported variant's size, batch-1 latency and holdout accuracy."""

    path: str
    bytes: int
    latency_ms_batch1: float
    accuracy: float


@dataclass(frozen=True)
class ImageQuantizationReport:
    """fp32 vs int8 and the decision."""

    keep: bool
    reason: str
    fp32: VariantReport
    int8: VariantReport
    accuracy_loss: float
    max_accuracy_loss: float
    calibration_images: int
    top1_agreement: float
    """Share of evaluation images on which int8 and fp32 predict the same class."""


class _Calibration:
    """What onnxruntime's CalibrationDataReader protocol asks: ``get_next`` until None."""

    def __init__(self, images: np.ndarray, batch: int = 100) -> None:
        self._batches = iter(
            [
                {INPUT_NAME: images[i : i + batch].astype(np.float32)}
                for i in range(0, len(images), batch)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # onnxruntime may call it; one pass is all we give
        pass


def quantize_static_int8(fp32_path: Path, int8_path: Path, calibration_images: np.ndarray) -> Path:
    """Static int8 quantisation (QDQ), activation ranges from ``calibration_images``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Pre-processing folds batch norm into the convolutions and infers shapes, so that
    # the quantiser sees Conv → Relu chains it can fuse (and quantises fewer tensors).
    prepared = int8_path.with_name(int8_path.stem + ".pre.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(prepared),
            str(int8_path),
            _Calibration(calibration_images),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)
    return int8_path


def quantize_and_decide(
    fp32_path: Path,
    calibration_images: np.ndarray,
    images: np.ndarray,
    y: np.ndarray,
    max_accuracy_loss: float = MAX_ACCURACY_LOSS,
) -> ImageQuantizationReport:
    """Quantise ``fp32_path`` statically, measure both on ``images``/``y``, decide."""
    int8_path = fp32_path.with_name(fp32_path.name.replace(".onnx", ".int8.onnx"))
    quantize_static_int8(fp32_path, int8_path, calibration_images)
    fp32, int8 = session(fp32_path), session(int8_path)
    p32, p8 = onnx_probabilities(fp32, images), onnx_probabilities(int8, images)
    acc32 = float((p32.argmax(1) == y).mean())
    acc8 = float((p8.argmax(1) == y).mean())
    sizes = fp32_path.stat().st_size, int8_path.stat().st_size
    decision = decide_int8(acc32, acc8, *sizes, max_accuracy_loss)
    return ImageQuantizationReport(
        keep=decision.keep,
        reason=decision.reason,
        fp32=VariantReport(str(fp32_path), sizes[0], batch1_latency_ms(fp32, images), acc32),
        int8=VariantReport(str(int8_path), sizes[1], batch1_latency_ms(int8, images), acc8),
        accuracy_loss=acc32 - acc8,
        max_accuracy_loss=max_accuracy_loss,
        calibration_images=len(calibration_images),
        top1_agreement=float((p32.argmax(1) == p8.argmax(1)).mean()),
    )


@dataclass(frozen=True)
class ImageExportReport:
    """What exporting one image model produced: the graph, its parity, the int8 decision."""

    onnx_path: str
    served_path: str
    """The file to serve: int8 when kept, else fp32."""
    parity: ParityReport
    quantization: ImageQuantizationReport | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_image_model(
    model: Any,
    out_dir: Path,
    calibration_images: np.ndarray,
    images: np.ndarray,
    y: np.ndarray,
    quantize: bool = True,
    max_accuracy_loss: float = MAX_ACCURACY_LOSS,
    parity_atol: float = PARITY_ATOL,
) -> ImageExportReport:
    """Export a loaded CNN (``CnnModel``) to ``out_dir/model.onnx``, check parity on
    ``images``, quantise (calibrated on ``calibration_images``) and decide; writes
    ``export_report.json`` beside the graphs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32_path = export_image_classifier(
        model.module, out_dir / "model.onnx", model.params, model.classes
    )
    parity = check_image_parity(model.class_probabilities(images), fp32_path, images, parity_atol)
    report = None
    if quantize:
        report = quantize_and_decide(fp32_path, calibration_images, images, y, max_accuracy_loss)
    served = report.int8.path if report is not None and report.keep else str(fp32_path)
    result = ImageExportReport(str(fp32_path), served, parity, report)
    (out_dir / "export_report.json").write_text(json.dumps(result.to_dict(), indent=1))
    return result


def export_image_model_dir(
    model_dir: Path,
    holdout: pd.DataFrame,
    out_dir: Path,
    settings: ExportSettings,
    task: Task,
    calibration: pd.DataFrame | None = None,
    training: TrainingSettings | None = None,
) -> ExportResult:
    """:func:`e2eai.export.model_export.export_model` for an image task's model directory.

    fp32 graph by the family's own exporter, parity over the holdout images, then (with
    ``settings.quantize`` and training rows in ``calibration``) static int8 kept only within
    :data:`MAX_ACCURACY_LOSS`; ``out_dir/model.onnx`` is the file to serve. Without
    calibration rows there is no int8: calibrating on the holdout would leak it.

    With ``settings.prune`` (a CNN and training rows in ``calibration``) the CNN's filters
    are also pruned by ``settings.pruning`` and the pruned CNN fine-tuned on the calibration
    rows' images and labels (``training``: workers, seed, validation share, patience;
    default :class:`~e2eai.config.TrainingSettings`), never on the holdout; with
    ``settings.quantize`` the pruned graph is quantised too. The served file is then the
    **smallest graph whose holdout accuracy is within its variant's bound of fp32's** (int8:
    :data:`MAX_ACCURACY_LOSS`; pruned and pruned int8: ``settings.pruning.max_accuracy_loss``)
    and that is smaller than fp32 — fp32 when none is
    (:data:`e2eai.export.image_pruning.EDGE_RULE`). ``ExportResult.pruning`` carries the
    comparison (bytes, parameters, holdout accuracy, batch-1 latency measured interleaved,
    kept or not and why), or why pruning did not apply (a family without convolutions, no
    calibration rows): the export then serves what it would without ``prune``.
    """
    import shutil

    from e2eai.export.model_export import SERVED_FILE, ExportResult
    from e2eai.storage import sha256_file
    from e2eai.training.families import family, load_model
    from e2eai.training.image_families import ImageClassifier, frame_images, frame_labels

    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(model_dir)
    if not isinstance(model, ImageClassifier):
        raise ModelArtifactError(f"{model_dir}: not an image classifier ({model.family})")
    shape = tuple(getattr(task, "image_shape", (1, 28, 28)))[1:]
    images = frame_images(holdout, shape)
    fp32_path = family(model.family).export_onnx(model, out_dir / "model.fp32.onnx", task)
    parity = check_parity(
        model.family,
        model.class_probabilities(images),
        onnx_probabilities(session(fp32_path), images),
        settings.parity_atol,
    )
    report = None
    classes = int(getattr(task, "num_classes", 10))
    int8_images = None
    if settings.quantize and calibration is not None and len(calibration):
        sample = calibration.sample(min(len(calibration), CALIBRATION_IMAGES), random_state=0)
        int8_images = frame_images(sample, shape)
        y = frame_labels(holdout, task.label, classes)
        report = quantize_and_decide(fp32_path, int8_images, images, y)
    chosen = Path(report.int8.path) if report and report.keep else fp32_path
    pruning = None
    if settings.prune:
        from e2eai.config import TrainingSettings
        from e2eai.export.image_pruning import ExportPruning, prune_for_export

        why_not = _pruning_does_not_apply(model, calibration)
        if why_not is not None:
            pruning = ExportPruning(False, why_not, "int8" if chosen != fp32_path else "fp32")
        else:
            assert calibration is not None  # checked by _pruning_does_not_apply
            pruning = prune_for_export(
                model,  # type: ignore[arg-type]  # a CnnModel, as checked above
                fp32_path,
                out_dir,
                frame_images(calibration, shape),
                frame_labels(calibration, task.label, classes),
                images,
                frame_labels(holdout, task.label, classes),
                training or TrainingSettings(),
                settings.pruning,
                report,
                int8_images,
            )
            assert pruning.compression is not None
            chosen = Path(pruning.compression.variant(pruning.served).path)
    served = out_dir / SERVED_FILE
    shutil.copyfile(chosen, served)
    return ExportResult(
        family=model.family,
        onnx_path=served,
        sha256=sha256_file(served),
        fp32_path=fp32_path,
        parity=parity,
        quantization=report,
        pruning=pruning,
    )


def _pruning_does_not_apply(model: Any, calibration: pd.DataFrame | None) -> str | None:
    """Why ``export.prune`` cannot prune ``model`` with these rows; None when it can."""
    from e2eai.training.cnn_family import CnnModel

    if not isinstance(model, CnnModel):
        return (
            f"pruning does not apply to {model.family}: structured pruning removes convolution "
            "filters and only the cnn family has them; exported as without export.prune"
        )
    if calibration is None or len(calibration) < 2:
        return (
            "no training rows (calibration) to fine-tune the pruned CNN on, and the holdout "
            "is never used for it; exported as without export.prune"
        )
    return None
