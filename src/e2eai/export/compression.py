"""What every compressed graph is judged by: smaller, and within a stated loss of quality.

A compressed variant (int8 of a tabular, image or text graph; a pruned CNN; the pruned CNN
quantised) replaces the fp32 graph only when its file is smaller and its holdout metric
(ROC-AUC, accuracy, macro-F1) is at most the allowed loss below fp32's. The reason says
which, with the numbers. Latency is measured the way one served request costs it: one
input at a time, median of many runs on a single-threaded ONNX Runtime session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CompressionDecision:
    """Whether a compressed graph replaces the fp32 one, and why (with the numbers)."""

    keep: bool
    reason: str


def decide_compressed(
    metric: str,
    fp32_score: float,
    score: float,
    fp32_bytes: int,
    size: int,
    max_loss: float,
    *,
    variant: str = "int8",
    subject: str | None = None,
    points: bool = False,
    setting: str | None = None,
    not_smaller: str = "",
) -> CompressionDecision:
    """Keep the ``variant`` graph (``size`` bytes, ``score`` on the holdout) only if it is
    smaller than fp32 and loses at most ``max_loss`` of ``metric``.

    ``points``: losses are shown in percentage points (accuracy), else as the metric's
    difference. ``subject`` is who "loses" in the reason (default: the variant), ``setting``
    the setting that holds ``max_loss``, ``not_smaller`` what a not-smaller file means.
    """
    loss = fp32_score - score

    def amount(value: float, sign: str = "") -> str:
        return f"{value * 100:{sign}.2f}" if points else f"{value:{sign}.4f}"

    who = subject or variant
    scores = f"(fp32 {fp32_score:.4f}, {variant} {score:.4f})"
    allowed = f"the allowed {amount(max_loss)}" + (f" ({setting})" if setting else "")
    if size >= fp32_bytes:
        return CompressionDecision(
            False,
            f"{variant} model is not smaller ({size} ≥ {fp32_bytes} bytes)"
            + (f": {not_smaller}" if not_smaller else ""),
        )
    if loss > max_loss + 1e-12:
        unit = f"{metric} points" if points else metric
        return CompressionDecision(False, f"{who} loses {amount(loss)} {unit} {scores} > {allowed}")
    change = f"{amount(-loss, '+')} points" if points else amount(-loss, "+")
    return CompressionDecision(
        True,
        f"{who} changes {metric} by {change} {scores}, within {allowed}, and is "
        f"{fp32_bytes / size:.1f}× smaller",
    )


def median_ms(run: Callable[[int], object], repeats: int = 200, warmup: int = 10) -> float:
    """Median wall time in milliseconds of ``run(i)`` over ``i < repeats``, after
    ``warmup`` untimed calls."""
    for i in range(warmup):
        run(i)
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def session(path: Path):
    """A single-threaded ONNX Runtime CPU session (predictable latency on shared cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
