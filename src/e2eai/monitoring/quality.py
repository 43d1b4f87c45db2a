"""Classification quality of a window's labelled predictions, with the AUC's uncertainty.

ROC-AUC with a 95 % Hanley–McNeil interval (what the retraining policy compares with the
champion's holdout figure), log-loss, Brier score, precision and recall at the settings'
threshold, and the expected calibration error over ten equal-width probability bins.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, precision_score, recall_score

from e2eai.serving.canary_analysis import auc_with_se

Z95 = 1.959963984540054
CALIBRATION_BINS = 10


def classification_quality(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Quality figures of ``probabilities`` against 0/1 ``labels`` (both [N]).

    With one class only the AUC (and its interval) is None: it is not defined.
    """
    y = np.asarray(labels, dtype=int)
    p = np.clip(np.asarray(probabilities, dtype=float), 1e-7, 1 - 1e-7)
    if len(y) != len(p) or not len(y):
        raise ValueError(f"need as many labels as probabilities, and some ({len(y)}, {len(p)})")
    predicted = (p >= threshold).astype(int)
    both = 0 < y.sum() < len(y)
    auc = se = None
    if both:
        auc, se, _, _ = auc_with_se(list(zip(p.tolist(), y.tolist(), strict=True)))
    return {
        "rows": len(y),
        "positive_rate": float(y.mean()),
        "mean_probability": float(p.mean()),
        "roc_auc": auc,
        "roc_auc_low": None if auc is None else max(0.0, auc - Z95 * se),
        "roc_auc_high": None if auc is None else min(1.0, auc + Z95 * se),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "calibration_error": expected_calibration_error(y, p),
    }


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Σ over equal-width bins of (share of rows) × |mean label − mean probability|."""
    bins = np.minimum((probabilities * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    error = 0.0
    for b in np.unique(bins):
        inside = bins == b
        error += inside.mean() * abs(labels[inside].mean() - probabilities[inside].mean())
    return float(error) if math.isfinite(error) else float("nan")
