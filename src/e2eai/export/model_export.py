"""``export_model``: a trained model directory → the ONNX file serving loads, verified.

The task fixes the contract (one input per feature, in order); the model's family converts
it; the parity gate compares the graph with the family's own predictions on the holdout.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from e2eai.config import ExportSettings, TrainingSettings
from e2eai.errors import ModelArtifactError
from e2eai.export.image_onnx import ImageQuantizationReport
from e2eai.export.image_pruning import ExportPruning
from e2eai.export.parity import ParityReport, check_parity
from e2eai.export.quantize import QuantizationReport, quantize_and_compare, session
from e2eai.export.signature import onnx_proba
from e2eai.export.text_onnx import TextQuantizationReport
from e2eai.storage import sha256_file
from e2eai.tasks import Task
from e2eai.training.columns import feature_kinds, labels
from e2eai.training.families import family, load_model
from e2eai.training.family import LoadedModel

SERVED_FILE = "model.onnx"
_REFERENCE_ROWS = 5_000
"""Holdout rows the explanation's base value and centring are averaged over."""


@dataclass(frozen=True)
class ExportResult:
    """The served ONNX file (fp32 or int8; for an image CNN with ``export.prune`` possibly
    pruned), its sha256, the parity check, quantisation and pruning."""

    family: str
    onnx_path: Path
    sha256: str
    fp32_path: Path
    parity: ParityReport
    quantization: QuantizationReport | ImageQuantizationReport | TextQuantizationReport | None
    pruning: ExportPruning | None = None
    """Image tasks with ``export.prune`` only: the fp32 / int8 / pruned comparison that chose
    the served file, or why pruning did not apply."""

    def summary(self) -> dict:
        q = self.quantization
        if self.pruning is not None:  # image tasks with export.prune
            served_int8 = self.pruning.served_quantized
            return {
                **self._common(),
                "quantized": served_int8 if self.pruning.applied else bool(q and q.keep),
                "quantization": None if q is None else asdict(q),
                "pruning": self.pruning.to_dict(),
            }
        if q is not None and not isinstance(q, QuantizationReport):  # image or text report
            return {**self._common(), "quantized": q.keep, "quantization": asdict(q)}
        return {
            **self._common(),
            "quantized": bool(q and q.keep),
            "quantization": None
            if q is None
            else {
                "kept": q.keep,
                "reason": q.reason,
                "int8_path": str(q.int8_path),
                "fp32_bytes": q.fp32_bytes,
                "int8_bytes": q.int8_bytes,
                "int8_batch_dependence": q.int8_batch_dependence,
                "fp32_latency_ms_batch256": q.fp32_latency_ms,
                "int8_latency_ms_batch256": q.int8_latency_ms,
                "fp32_roc_auc": q.fp32_roc_auc,
                "int8_roc_auc": q.int8_roc_auc,
                "auc_loss": q.auc_loss,
            },
        }

    def _common(self) -> dict:
        return {
            "family": self.family,
            "onnx_path": str(self.onnx_path),
            "sha256": self.sha256,
            "fp32_path": str(self.fp32_path),
            "parity_max_abs_diff": self.parity.max_abs_diff,
            "parity_atol": self.parity.atol,
            "parity_rows": self.parity.rows,
        }


def check_inputs(model: LoadedModel, task: Task) -> None:
    """The model must read exactly the task's features, with the same kinds."""
    have, want = model.input_kinds, feature_kinds(task)
    if have == want:
        return
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    changed = sorted(n for n in set(have) & set(want) if have[n] != want[n])
    problems = [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("lacks", missing),
            ("reads features the task does not have", extra),
            ("other kind", changed),
        )
        if names
    ]
    raise ModelArtifactError(
        f"{model.model_dir}: the model's inputs differ from task {task.name!r}'s features "
        f"({'; '.join(problems)}); retrain it with the task's feature settings"
    )


def to_onnx(
    model: LoadedModel, out_path: Path, task: Task, reference: pd.DataFrame | None = None
) -> Path:
    """Convert ``model`` (any family) to ONNX at ``out_path`` under the task's contract.

    ``reference`` rows centre the contributions of a family that explains its predictions.
    """
    check_inputs(model, task)
    return family(model.family).export_onnx(model, out_path, task, reference)


def export_model(
    model_dir: Path,
    holdout: pd.DataFrame,
    out_dir: Path,
    settings: ExportSettings,
    task: Task,
    calibration: pd.DataFrame | None = None,
    training: TrainingSettings | None = None,
) -> ExportResult:
    """Export, check parity over ``holdout`` (else ExportParityError), maybe quantise.

    ``out_dir/model.onnx`` is the file to serve: the int8 model when it was kept, else fp32
    (image CNNs with ``settings.prune``: the smallest variant within its bound, see
    :func:`~e2eai.export.image_onnx.export_image_model_dir`). ``calibration``: training rows
    for static int8 and the pruned CNN's fine-tuning (image tasks; tabular int8 is dynamic).
    ``training``: the fine-tuning's workers, seed and patience (default: the defaults).
    """
    if task.modality == "image":
        from e2eai.export.image_onnx import export_image_model_dir

        return export_image_model_dir(
            model_dir, holdout, out_dir, settings, task, calibration, training
        )
    if task.modality == "text":
        from e2eai.export.text_onnx import export_text_model_dir

        return export_text_model_dir(model_dir, holdout, out_dir, settings, task)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(model_dir)
    reference = holdout.sample(min(len(holdout), _REFERENCE_ROWS), random_state=0)
    fp32_path = to_onnx(model, out_dir / "model.fp32.onnx", task, reference)
    framework = model.predict_proba(holdout)
    parity = check_parity(
        model.family,
        framework,
        onnx_proba(session(fp32_path), holdout, task),
        settings.parity_atol,
    )
    quantization = None
    y = labels(holdout, task.label, "holdout")
    if settings.quantize and len(np.unique(y)) == 2:
        quantization = quantize_and_compare(
            fp32_path, holdout, y, settings.quantize_max_auc_loss, task
        )
    served = out_dir / SERVED_FILE
    chosen = quantization.int8_path if quantization and quantization.keep else fp32_path
    shutil.copyfile(chosen, served)
    return ExportResult(
        family=model.family,
        onnx_path=served,
        sha256=sha256_file(served),
        fp32_path=fp32_path,
        parity=parity,
        quantization=quantization,
    )
