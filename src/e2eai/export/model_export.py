"""``export_model``: a trained model directory → the ONNX file serving loads, verified."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from e2eai.config import ExportSettings
from e2eai.export.parity import ParityReport, check_parity
from e2eai.export.quantize import QuantizationReport, quantize_and_compare, session
from e2eai.export.signature import onnx_proba
from e2eai.storage import sha256_file
from e2eai.training.columns import labels
from e2eai.training.model_io import load_model

SERVED_FILE = "model.onnx"


@dataclass(frozen=True)
class ExportResult:
    """The served ONNX file (fp32 or int8), its sha256, the parity check and quantisation."""

    family: str
    onnx_path: Path
    sha256: str
    fp32_path: Path
    parity: ParityReport
    quantization: QuantizationReport | None

    def summary(self) -> dict:
        q = self.quantization
        return {
            "family": self.family,
            "onnx_path": str(self.onnx_path),
            "sha256": self.sha256,
            "fp32_path": str(self.fp32_path),
            "parity_max_abs_diff": self.parity.max_abs_diff,
            "parity_atol": self.parity.atol,
            "parity_rows": self.parity.rows,
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


def to_onnx(model_dir: Path, out_path: Path) -> tuple[str, Path]:
    """Convert the model in ``model_dir`` (any family) to ONNX at ``out_path``."""
    family = load_model(model_dir).family
    if family == "torch_mlp":
        from e2eai.export.torch_onnx import torch_to_onnx

        return family, torch_to_onnx(model_dir, out_path)
    from e2eai.export.sklearn_onnx import sklearn_to_onnx

    return family, sklearn_to_onnx(model_dir, out_path)


def export_model(
    model_dir: Path, holdout: pd.DataFrame, out_dir: Path, settings: ExportSettings
) -> ExportResult:
    """Export, check parity over ``holdout`` (else ExportParityError), maybe quantise.

    ``out_dir/model.onnx`` is the file to serve: the int8 model when it was kept, else fp32.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    family, fp32_path = to_onnx(model_dir, out_dir / "model.fp32.onnx")
    framework = load_model(model_dir).predict_proba(holdout)
    parity = check_parity(
        family, framework, onnx_proba(session(fp32_path), holdout), settings.parity_atol
    )
    quantization = None
    y = labels(holdout, "holdout")
    if settings.quantize and len(np.unique(y)) == 2:
        quantization = quantize_and_compare(fp32_path, holdout, y, settings.quantize_max_auc_loss)
    served = out_dir / SERVED_FILE
    chosen = quantization.int8_path if quantization and quantization.keep else fp32_path
    shutil.copyfile(chosen, served)
    return ExportResult(
        family=family,
        onnx_path=served,
        sha256=sha256_file(served),
        fp32_path=fp32_path,
        parity=parity,
        quantization=quantization,
    )
