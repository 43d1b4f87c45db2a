"""int8 dynamic quantisation with ONNX Runtime, kept only when it costs little AUC."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from e2eai.export.compression import CompressionDecision, decide_compressed, median_ms, session
from e2eai.export.signature import onnx_feed, onnx_proba

if TYPE_CHECKING:
    from e2eai.tasks import Task


@dataclass(frozen=True)
class QuantizationReport:
    """Size, latency (batch 256, median) and holdout AUC of fp32 vs int8, and the decision."""

    keep: bool
    reason: str
    int8_path: Path
    fp32_bytes: int
    int8_bytes: int
    fp32_latency_ms: float
    int8_latency_ms: float
    fp32_roc_auc: float
    int8_roc_auc: float
    auc_loss: float
    int8_batch_dependence: float = 0.0
    """max |p(row alone) - p(row in the holdout batch)| of the int8 model: dynamic
    quantisation scales activations per batch, so a served single row can differ."""


def decide_quantization(
    fp32_auc: float, int8_auc: float, fp32_bytes: int, int8_bytes: int, max_auc_loss: float
) -> CompressionDecision:
    """Keep int8 only if it is smaller and loses at most ``max_auc_loss`` holdout ROC-AUC."""
    return decide_compressed(
        "ROC-AUC",
        fp32_auc,
        int8_auc,
        fp32_bytes,
        int8_bytes,
        max_auc_loss,
        setting="export.quantize_max_auc_loss",
        not_smaller="nothing to quantise (no MatMul/Gemm weights)",
    )


def median_latency_ms(
    sess, frame: pd.DataFrame, batch: int, task: Task, repeats: int = 20
) -> float:
    """Median wall time of one ``batch``-row inference (rows repeated if the frame is short)."""
    rows = frame.iloc[np.arange(batch) % len(frame)]
    feed = onnx_feed(rows, task)
    return median_ms(lambda _: sess.run(None, feed), repeats, warmup=1)


_SERVED_SAMPLE = 2000
"""Holdout rows scored one at a time for the quantisation decision."""


def quantize_and_compare(
    fp32_path: Path, holdout: pd.DataFrame, y: np.ndarray, max_auc_loss: float, task: Task
) -> QuantizationReport:
    """Quantise ``fp32_path`` dynamically (int8 weights) and decide whether to keep it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = fp32_path.with_name(
        fp32_path.name.replace(".fp32", "").replace(".onnx", ".int8.onnx")
    )
    quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)
    fp32, int8 = session(fp32_path), session(int8_path)
    # Scored as served: one row per request. Dynamic quantisation picks activation scales
    # per batch, so batch scoring would overstate what single-row traffic gets.
    rows = np.linspace(0, len(holdout) - 1, min(len(holdout), _SERVED_SAMPLE)).astype(int)
    sample, y_sample = holdout.iloc[rows], y[rows]
    int8_single = np.array(
        [onnx_proba(int8, sample.iloc[i : i + 1], task)[0] for i in range(len(rows))]
    )
    int8_batch = onnx_proba(int8, holdout, task)[rows]
    fp32_auc = float(roc_auc_score(y_sample, onnx_proba(fp32, sample, task)))
    int8_auc = float(roc_auc_score(y_sample, int8_single))
    sizes = fp32_path.stat().st_size, int8_path.stat().st_size
    decision = decide_quantization(fp32_auc, int8_auc, *sizes, max_auc_loss)
    return QuantizationReport(
        keep=decision.keep,
        reason=decision.reason,
        int8_path=int8_path,
        fp32_bytes=sizes[0],
        int8_bytes=sizes[1],
        fp32_latency_ms=median_latency_ms(fp32, holdout, 256, task),
        int8_latency_ms=median_latency_ms(int8, holdout, 256, task),
        fp32_roc_auc=fp32_auc,
        int8_roc_auc=int8_auc,
        auc_loss=fp32_auc - int8_auc,
        int8_batch_dependence=float(np.max(np.abs(int8_single - int8_batch))),
    )
