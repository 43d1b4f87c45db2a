"""Parity gate: the ONNX graph must reproduce the framework model's probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from e2eai.errors import ExportParityError


@dataclass(frozen=True)
class ParityReport:
    """Largest absolute probability difference over the rows compared, and the tolerance."""

    max_abs_diff: float
    atol: float
    rows: int


def check_parity(
    family: str, framework: np.ndarray, onnx_values: np.ndarray, atol: float
) -> ParityReport:
    """Compare row by row; raise ExportParityError with the numbers when over ``atol``."""
    framework = np.asarray(framework, dtype=np.float64).reshape(-1)
    onnx_values = np.asarray(onnx_values, dtype=np.float64).reshape(-1)
    if framework.shape != onnx_values.shape:
        raise ExportParityError(family, float("inf"), atol, len(framework))
    diff = np.abs(framework - onnx_values)
    # NaN anywhere is a failure, never a silent pass.
    max_abs_diff = float("inf") if np.isnan(diff).any() else float(diff.max(initial=0.0))
    if max_abs_diff > atol:
        raise ExportParityError(family, max_abs_diff, atol, len(framework))
    return ParityReport(max_abs_diff=max_abs_diff, atol=atol, rows=len(framework))
