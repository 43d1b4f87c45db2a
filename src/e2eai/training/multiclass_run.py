"""Training for multi-class tasks (images, text): split, fit the family and baselines, gate.

What :func:`e2eai.training.run.run_training` does for tabular tasks, for a task whose
``modality`` is ``image`` or ``text`` (``run_training`` hands such tasks here, so ``e2eai
train`` and the pipeline step are unchanged): a seeded split by rows stratified on the class,
the baselines and the chosen family (plainly, after an HPO search, or warm-started from a
registered version, as far as the family supports it) fitted on the training part, every
model scored on the holdout — accuracy, macro-F1, per-class recall/precision, log-loss,
multi-class Brier, macro one-vs-rest ROC-AUC, and the task's ``priority_class`` on its own
(triage: the negative messages' recall and precision) — and two gates on the task's
``gate_metric`` (``accuracy`` unless it says otherwise): beat every baseline by the task's
``baseline_margin``, trail the registered champion by at most ``champion_tolerance``.
The result is a :class:`~e2eai.training.run.TrainingResult`, so registration
(:func:`e2eai.training.registration.register_candidate`) is shared.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e2eai.config import Settings
from e2eai.errors import TrainingConfigError, TrainingDataError
from e2eai.jsonable import to_jsonable
from e2eai.tasks import Task
from e2eai.training.champion import current_champion
from e2eai.training.evaluation import classification_metrics
from e2eai.training.families import family, searchable_families, warm_startable_families
from e2eai.training.family import FitRequest, FittedModel, LoadedModel
from e2eai.training.gates import GateResult
from e2eai.training.multiclass_model import MulticlassModel, frame_labels, task_classes
from e2eai.training.run import TrainingResult, fit_chosen, write_split_files

PARTS = ("train", "validation", "holdout")
METRIC_WORDS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
"""Metrics a multi-class gate may compare, in words."""


@dataclass(frozen=True)
class ClassSplit:
    """Train, validation and holdout rows of a multi-class task, and how they were drawn."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    details: dict[str, Any]


def stratified_class_split(
    frame: pd.DataFrame,
    label: str,
    row_id: str,
    holdout_fraction: float,
    validation_fraction: float,
    seed: int,
    pool_fraction: float = 1.0,
    max_train_rows: int | None = None,
) -> ClassSplit:
    """Seeded shuffle per class into holdout, validation and train (multi-class).

    Per class: the first ``holdout_fraction`` of its shuffled rows are held out, then
    ``validation_fraction`` of the rest validate; the remaining training rows (the pool) are
    capped at ``max_train_rows`` over all classes, and the first ``pool_fraction`` of the
    capped pool kept (each class keeps the same share). Rows are ordered by ``row_id`` first,
    so the split does not depend on the frame's order, and a smaller training part is a
    subset of a larger one.
    """
    for name, value in (
        ("holdout_fraction", holdout_fraction),
        ("validation_fraction", validation_fraction),
    ):
        if not 0 < value < 1:
            raise TrainingDataError(f"training.{name}={value} is not in (0, 1)")
    frame = frame.sort_values(row_id, kind="stable").reset_index(drop=True)
    y = frame[label].to_numpy()
    rng = np.random.default_rng(seed)
    per_class: dict[Any, dict[str, np.ndarray]] = {}
    pool_rows = 0
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        rows = rows[rng.permutation(len(rows))]
        n_holdout = round(len(rows) * holdout_fraction)
        rest = rows[n_holdout:]
        n_validation = round(len(rest) * validation_fraction)
        per_class[cls] = {
            "holdout": rows[:n_holdout],
            "validation": rest[:n_validation],
            "train": rest[n_validation:],
        }
        pool_rows += len(rest) - n_validation
    # The cap bounds the whole pool; pool_fraction is a share of the capped pool, so a run on
    # half the pool (the cycle's champion) sees half of what a run on all of it does.
    share = pool_fraction
    if max_train_rows is not None and pool_rows > max_train_rows:
        share = pool_fraction * max_train_rows / pool_rows
    chosen: dict[str, list[np.ndarray]] = {name: [] for name in PARTS}
    for parts in per_class.values():
        for name in PARTS:
            rows = parts[name]
            if name == "train":
                rows = rows[: math.floor(len(rows) * share)]
            chosen[name].append(rows)
    out = {
        name: frame.iloc[np.sort(np.concatenate(chosen[name]))].reset_index(drop=True)
        for name in PARTS
    }
    for name, part in out.items():
        if part[label].nunique() < 2:
            raise TrainingDataError(
                f"stratified split: the {name} part has {len(part)} rows and fewer than two "
                f"classes (the frame has {len(frame)} rows)"
            )
    return ClassSplit(
        train=out["train"],
        validation=out["validation"],
        holdout=out["holdout"],
        details={
            "policy": "stratified",
            "label": label,
            "seed": seed,
            "fractions": {"holdout": holdout_fraction, "validation": validation_fraction},
            "pool_rows": pool_rows,
            "train_share_of_pool": round(share, 6),
            "max_train_rows": max_train_rows,
            "rows": {name: len(part) for name, part in out.items()},
        },
    )


def _gate_name(baseline: str) -> str:
    return "beats_" + re.sub(r"[^a-z0-9]+", "_", baseline.lower()).strip("_")


def metric_baseline_gate(
    metric: str, model_value: float, baseline_value: float, margin: float, baseline: str
) -> GateResult:
    """The candidate must beat the baseline's holdout ``metric`` by ``margin`` (a fraction)."""
    words = METRIC_WORDS.get(metric, metric)
    lead = model_value - baseline_value
    passed = lead >= margin - 1e-12
    verb = "beats" if passed else "does not beat"
    return GateResult(
        name=_gate_name(baseline),
        passed=passed,
        observed={
            f"model_{metric}": model_value,
            f"baseline_{metric}": baseline_value,
            "lead": lead,
        },
        threshold=margin,
        message=f"candidate {words} {model_value:.4f} {verb} {baseline} "
        f"{baseline_value:.4f} by the required {margin:.4f} (lead {lead:+.4f})",
    )


def metric_champion_gate(
    metric: str,
    model_value: float,
    champion_value: float | None,
    tolerance: float,
    champion_version: int | None,
) -> GateResult:
    """The candidate may trail the champion's ``metric`` (same holdout) by ``tolerance``."""
    words = METRIC_WORDS.get(metric, metric)
    if champion_value is None:
        return GateResult(
            name="not_worse_than_champion",
            passed=True,
            observed={f"model_{metric}": model_value, f"champion_{metric}": None},
            threshold=tolerance,
            message="no champion: nothing to compare against",
        )
    gap = model_value - champion_value
    passed = gap >= -tolerance - 1e-12
    verdict = "is not worse than" if passed else "is worse than"
    return GateResult(
        name="not_worse_than_champion",
        passed=passed,
        observed={
            f"model_{metric}": model_value,
            f"champion_{metric}": champion_value,
            "gap": gap,
            "champion_version": champion_version,
        },
        threshold=tolerance,
        message=f"candidate {words} {model_value:.4f} {verdict} champion "
        f"v{champion_version} {champion_value:.4f} beyond tolerance {tolerance:.4f} "
        f"(gap {gap:+.4f})",
    )


def plot_confusion(matrix: list[list[int]], class_names: list[str], path: Path) -> Path:
    """The holdout confusion matrix, rows normalised (recall per class on the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(class_names) + 1)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            if counts[i, j]:
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="share of the true class")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _multiclass_model(model: LoadedModel, task: Task) -> MulticlassModel:
    if not isinstance(model, MulticlassModel) or model.modality != task.modality:
        raise TrainingConfigError(
            f"the {model.family} family does not classify {task.modality} inputs: task "
            f"{task.name!r} trains {task.modality} families only ({', '.join(task.families)})"
        )
    return model


def chosen_family_name(settings: Settings, task: Task) -> str:
    """``training.family`` when it was set, else the task's first family.

    The platform's default family (a tabular one) counts as unset even when a settings
    round trip (the pipeline's JSON) marked it as set: it never applies to these tasks.
    """
    t = settings.training
    default = type(t).model_fields["family"].default
    if "family" not in t.model_fields_set or (t.family == default and default not in task.families):
        return task.families[0]
    if t.family not in task.families:
        raise TrainingConfigError(
            f"training.family {t.family!r} does not apply to task {task.name!r}; its "
            f"families: {', '.join(task.families)}"
        )
    return t.family


def _run_id(
    frame: pd.DataFrame, settings: Settings, name: str, task: Task, warm_start_from: int | None
) -> str:
    """Same rows + same settings → same run directory (a re-run resumes its checkpoint)."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame[[task.row_id, task.label]]).to_numpy())
    digest.update(str(frame.attrs.get("raw_snapshot")).encode())
    digest.update(settings.training.model_dump_json().encode())
    digest.update(f"{name}:{getattr(task, 'training_rows', None)}:{warm_start_from}".encode())
    return f"{name}-{digest.hexdigest()[:12]}"


def run_multiclass_training(
    settings: Settings,
    task: Task,
    frame: pd.DataFrame | None = None,
    warm_start_from: int | None = None,
    run_dir: Path | None = None,
) -> TrainingResult:
    """Train the task's chosen family and its baselines; evaluate on the holdout; gate."""
    t = settings.training
    name = chosen_family_name(settings, task)
    chosen = family(name)
    if warm_start_from is not None and not chosen.supports_warm_start:
        raise TrainingConfigError(
            f"warm start applies to {', '.join(warm_startable_families())}; the family of "
            f"task {task.name!r} is {name!r}"
        )
    if t.hpo_trials > 0 and chosen.search_space is None:
        raise TrainingConfigError(
            f"training.hpo_trials searches a family's hyper-parameter space; {name!r} has none "
            f"(families with one: {', '.join(searchable_families())})"
        )
    if not task.baselines:
        raise TrainingConfigError(f"task {task.name!r} names no baseline families to gate on")
    class_names = list(getattr(task, "classes", ()))
    classes = task_classes(task)
    priority = getattr(task, "priority_class", None)
    metric = getattr(task, "gate_metric", "accuracy")
    if metric not in METRIC_WORDS:
        raise TrainingConfigError(
            f"task {task.name!r} gates on {metric!r}; multi-class gates compare "
            f"{', '.join(METRIC_WORDS)}"
        )
    if frame is None:
        frame = task.training_set(settings)
    split = stratified_class_split(
        frame,
        task.label,
        task.row_id,
        t.holdout_fraction,
        t.validation_fraction,
        t.seed,
        t.pool_fraction,
        getattr(task, "training_rows", None),
    )
    run_dir = run_dir or settings.home / "training" / _run_id(
        frame, settings, name, task, warm_start_from
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    holdout_path, reference_path = write_split_files(split, run_dir, t.seed)

    def request(work_dir: Path) -> FitRequest:
        return FitRequest(task, split.train, split.validation, t, work_dir)

    models: dict[str, MulticlassModel] = {}
    fit_params: dict[str, dict[str, Any]] = {}
    fitted: FittedModel
    fitted, hpo = fit_chosen(settings, chosen, request(run_dir), warm_start_from)
    models["model"] = _multiclass_model(chosen.load(fitted.model_dir), task)
    for baseline_name in task.baselines:
        baseline = family(baseline_name)
        done = baseline.fit(request(run_dir / "baselines" / baseline_name))
        models[baseline_name] = _multiclass_model(baseline.load(done.model_dir), task)
        fit_params[baseline_name] = done.params

    y = frame_labels(split.holdout, task.label, classes)
    metrics = {
        key: classification_metrics(y, model.predict_frame(split.holdout), class_names, priority)
        for key, model in models.items()
    }
    for key, params in fit_params.items():
        metrics[key]["fit_seconds"] = params.get("fit_seconds")
    if fitted.torch_summary is not None:
        metrics["model"]["fit_seconds"] = round(fitted.torch_summary.train_seconds, 2)
    else:
        metrics["model"]["fit_seconds"] = fitted.params.get("fit_seconds")

    champion = current_champion(settings, run_dir / "champion")
    champion_value, champion_version = None, None
    # A champion of another modality or class set (a model name reused across tasks) is no
    # comparison.
    if (
        champion is not None
        and isinstance(champion.model, MulticlassModel)
        and champion.model.modality == task.modality
    ):
        p = champion.model.predict_frame(split.holdout)
        if p.shape == (len(y), classes):
            metrics["champion"] = classification_metrics(y, p, class_names, priority)
            champion_value, champion_version = metrics["champion"][metric], champion.version
    gates = [
        metric_baseline_gate(
            metric,
            metrics["model"][metric],
            metrics[baseline_name][metric],
            task.gate_threshold(settings, "baseline_margin"),
            family(baseline_name).title,
        )
        for baseline_name in task.baselines
    ]
    gates.append(
        metric_champion_gate(
            metric,
            metrics["model"][metric],
            champion_value,
            task.gate_threshold(settings, "champion_tolerance"),
            champion_version,
        )
    )
    plots = {
        "confusion_matrix": plot_confusion(
            metrics["model"]["confusion_matrix"],
            class_names,
            run_dir / "plots" / "confusion_matrix.png",
        )
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=to_jsonable))
    (run_dir / "gates.json").write_text(json.dumps([asdict(g) for g in gates], indent=1))
    return TrainingResult(
        family=name,
        run_dir=run_dir,
        model_dir=fitted.model_dir,
        holdout_path=holdout_path,
        metrics=metrics,
        gates=gates,
        plots=plots,
        params=fitted.params,
        training_window={"rows": len(split.train), **split.details},
        holdout_window={"rows": len(split.holdout), "fraction": t.holdout_fraction, "seed": t.seed},
        task=task.name,
        split=split.details,
        raw_snapshot=frame.attrs.get("raw_snapshot"),
        parent_version=warm_start_from,
        champion_version=champion_version,
        torch_summary=fitted.torch_summary,
        hpo=hpo,
        extra_artifacts={
            "metrics.json": run_dir / "metrics.json",
            "gates.json": run_dir / "gates.json",
            "reference.parquet": reference_path,
        },
    )
