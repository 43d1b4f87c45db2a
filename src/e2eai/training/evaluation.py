"""Holdout metrics (binary, and multi-class from class probabilities), per-slice ROC-AUC and
the plots people look at (ROC, calibration)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

if TYPE_CHECKING:
    from e2eai.tasks import Task

_MIN_SLICE_ROWS = 30


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(skm.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def holdout_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, slices: pd.DataFrame | None = None
) -> dict:
    """ROC-AUC, PR-AUC, log-loss, Brier, P/R/F1 at ``threshold`` and per-slice ROC-AUC.

    ``slices``: one column per slicing attribute (the task's slices), aligned with ``y``. A
    slice with fewer than 30 rows or a single class gets no AUC (None): too few to judge.
    """
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    predicted = (p >= threshold).astype(int)
    result: dict = {
        "rows": len(y),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": _auc(y, p),
        "pr_auc": float(skm.average_precision_score(y, p)),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "threshold": threshold,
        "precision": float(skm.precision_score(y, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y, predicted, zero_division=0)),
        "f1": float(skm.f1_score(y, predicted, zero_division=0)),
    }
    if slices is not None:
        per_slice: dict[str, dict[str, float | None]] = {}
        for column in slices.columns:
            keys = slices[column].fillna("").astype(str).to_numpy()
            per_slice[column] = {
                key: (
                    _auc(y[keys == key], p[keys == key])
                    if (keys == key).sum() >= _MIN_SLICE_ROWS
                    else None
                )
                for key in sorted(set(keys))
            }
        result["slices"] = per_slice
    return result


def classification_metrics(
    y: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    priority_class: str | None = None,
) -> dict[str, Any]:
    """Holdout metrics of a multi-class model from its class probabilities.

    ``priority_class`` (a class name) adds its recall, precision and F1 under ``priority``:
    the class whose misses cost most (triage: a negative message nobody reads).
    """
    classes = np.arange(len(class_names))
    predicted = probabilities.argmax(axis=1)
    onehot = np.eye(len(classes))[y]
    recall = skm.recall_score(y, predicted, labels=classes, average=None, zero_division=0)
    precision = skm.precision_score(y, predicted, labels=classes, average=None, zero_division=0)
    try:
        roc_auc = float(
            skm.roc_auc_score(y, probabilities, multi_class="ovr", average="macro", labels=classes)
        )
    except ValueError:  # a class absent from a tiny holdout
        roc_auc = None
    metrics: dict[str, Any] = {
        "rows": len(y),
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "macro_f1": float(skm.f1_score(y, predicted, labels=classes, average="macro")),
        "log_loss": float(skm.log_loss(y, probabilities, labels=classes)),
        "brier": float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))),
        "roc_auc": roc_auc,
        "pr_auc": float(skm.average_precision_score(onehot, probabilities, average="macro")),
        "recall_by_class": {name: float(r) for name, r in zip(class_names, recall, strict=True)},
        "precision_by_class": {
            name: float(p) for name, p in zip(class_names, precision, strict=True)
        },
        "confusion_matrix": skm.confusion_matrix(y, predicted, labels=classes).tolist(),
    }
    if priority_class is not None:
        k = list(class_names).index(priority_class)
        r, p = float(recall[k]), float(precision[k])
        metrics["priority"] = {
            "class": priority_class,
            "recall": r,
            "precision": p,
            "f1": 2 * r * p / (r + p) if r + p else 0.0,
        }
    return metrics


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """ROC curves of several models on the same holdout, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (y, p) in curves.items():
        fpr, tpr, _ = skm.roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {skm.roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, holdout")
    ax.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def slice_columns(task: Task, frame: pd.DataFrame) -> pd.DataFrame:
    """The task's slice columns that ``frame`` has (metrics are broken down by each)."""
    return frame[[column for column in task.slices if column in frame.columns]]


def plot_calibration(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    bins: int = 10,
    positive_name: str = "positive",
) -> Path:
    """Reliability diagram (mean predicted probability vs observed rate per quantile bin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (y, p) in curves.items():
        observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(
        xlabel=f"mean predicted P({positive_name})",
        ylabel=f"observed {positive_name} rate",
        title="Calibration, holdout",
    )
    ax.legend(loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
