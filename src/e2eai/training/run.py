"""``run_training``: the one entry point the CLI and the KFP components call.

Trains the configured family (optionally after an HPO search, optionally warm-started from
a registered version) and the task's baselines, evaluates all of them on the holdout of the
task's split (by time, or stratified by rows), compares against the registry's champion
and returns every number, plot and path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from e2eai.config import Settings
from e2eai.errors import TrainingConfigError, TrainingDataError
from e2eai.features.rebalance import rebalance
from e2eai.jsonable import to_jsonable
from e2eai.tasks import Task, load_task
from e2eai.training.champion import current_champion, fetch_model_dir, open_registry
from e2eai.training.columns import labels
from e2eai.training.evaluation import (
    holdout_metrics,
    plot_calibration,
    plot_roc,
    slice_columns,
)
from e2eai.training.families import family, searchable_families, warm_startable_families
from e2eai.training.family import Family, FitRequest, FittedModel, LoadedModel
from e2eai.training.gates import GateResult, baseline_gate, champion_gate
from e2eai.training.hpo import HpoResult
from e2eai.training.split import DataSplit, split_frame
from e2eai.training.torch_job import TorchRunSummary


@dataclass(frozen=True)
class TrainingResult:
    """Everything one training run produced."""

    family: str
    run_dir: Path
    model_dir: Path
    holdout_path: Path
    metrics: dict[str, dict]  # "model", each baseline family (+ "champion" when one exists)
    gates: list[GateResult]
    plots: dict[str, Path]
    params: dict[str, Any]
    training_window: dict[str, Any]  # days of a time split; rows, share and seed of a row split
    holdout_window: dict[str, Any]
    task: str | None = None
    split: dict[str, Any] | None = None  # DataSplit.describe(): policy, bounds, rows per part
    raw_snapshot: str | None = None
    parent_version: int | None = None
    champion_version: int | None = None
    torch_summary: TorchRunSummary | None = None
    hpo: HpoResult | None = None
    extra_artifacts: dict[str, Path] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every gate passed."""
        return all(gate.passed for gate in self.gates)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest: holdout ROC-AUC per model, gates, paths."""
        return {
            "family": self.family,
            "task": self.task,
            "model_dir": str(self.model_dir),
            "metrics": {
                name: {k: v for k, v in m.items() if k != "slices"}
                for name, m in self.metrics.items()
            },
            "gates": [asdict(g) for g in self.gates],
            "gates_passed": self.passed,
            "plots": {k: str(v) for k, v in self.plots.items()},
            "params": self.params,
            "training_window": self.training_window,
            "holdout_window": self.holdout_window,
            "split": self.split,
            "parent_version": self.parent_version,
            "champion_version": self.champion_version,
            "epochs_run": self.torch_summary.epochs_run if self.torch_summary else None,
            "resumed_from_epoch": (
                self.torch_summary.resumed_from_epoch if self.torch_summary else None
            ),
            "hpo": (
                {
                    "best_params": self.hpo.best_params,
                    "trials": self.hpo.trials,
                    "pruned": self.hpo.pruned,
                    "best_validation_auc": self.hpo.best_validation_auc,
                    "trials_csv": str(self.hpo.trials_csv),
                }
                if self.hpo
                else None
            ),
        }


REFERENCE_ROWS = 20_000
"""Training rows kept with a version as monitoring's reference (``reference.parquet``)."""


class RowParts(Protocol):
    """A split's training and holdout rows (a time/row ``DataSplit`` or a class split)."""

    @property
    def train(self) -> pd.DataFrame: ...

    @property
    def holdout(self) -> pd.DataFrame: ...


def write_split_files(split: RowParts, run_dir: Path, seed: int) -> tuple[Path, Path]:
    """Write the run's ``holdout.parquet`` and ``reference.parquet`` (what monitoring
    compares served traffic with: a seeded sample of at most ``REFERENCE_ROWS`` of the rows
    the model learnt on); returns both paths."""
    holdout_path = run_dir / "holdout.parquet"
    split.holdout.to_parquet(holdout_path, index=False)
    reference_path = run_dir / "reference.parquet"
    sample = min(len(split.train), REFERENCE_ROWS)
    split.train.sample(sample, random_state=seed).to_parquet(reference_path, index=False)
    return holdout_path, reference_path


def load_training_frame(settings: Settings, task: Task) -> pd.DataFrame:
    """The task's training rows: the training window plus its holdout days, or every row."""
    t = settings.training
    if task.time_based:
        return task.training_set(
            settings, t.train_start, t.train_end + timedelta(days=t.holdout_days)
        )
    return task.training_set(settings)


def _run_id(frame: pd.DataFrame, settings: Settings, warm_start_from: int | None) -> str:
    """Same data + same settings → same run directory, so a re-run resumes its checkpoint."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(settings.training.model_dump_json().encode())
    digest.update(str(warm_start_from).encode())
    return f"{settings.training.family}-{digest.hexdigest()[:12]}"


def training_family(task: Task, name: str) -> Family:
    """The family ``name``, registered and applicable to ``task`` (else TrainingConfigError)."""
    chosen = family(name)
    if name not in task.families:
        raise TrainingConfigError(
            f"training.family {name!r} does not apply to task {task.name!r}; its families: "
            f"{', '.join(task.families)}"
        )
    return chosen


def search_family(task: Task, name: str) -> Family:
    """The family ``name`` for an HPO search: it must have a search space."""
    chosen = training_family(task, name)
    if chosen.search_space is None:
        raise TrainingConfigError(
            f"training.hpo_trials searches a family's hyper-parameter space; training.family "
            f"{name!r} has none (families with one: {', '.join(searchable_families())})"
        )
    return chosen


def fit_chosen(
    settings: Settings,
    chosen: Family,
    request: FitRequest,
    warm_start_from: int | None,
) -> tuple[FittedModel, HpoResult | None]:
    """Fit the configured family: from a registered parent, after an HPO search, or plainly."""
    t = settings.training
    if warm_start_from is not None:
        registry = open_registry(settings)
        try:
            parent_dir = fetch_model_dir(
                registry, warm_start_from, request.work_dir / f"parent-v{warm_start_from}"
            )
        finally:
            registry.close()
        return chosen.warm_start(request, parent_dir), None
    hpo = None
    if t.hpo_trials > 0:
        hpo = chosen.search(
            request,
            request.work_dir / "hpo",
            n_trials=t.hpo_trials,
            timeout_seconds=t.hpo_timeout_seconds,
        )
        request = dataclasses.replace(request, overrides=hpo.best_params)
    fitted = chosen.fit(request)
    if hpo is not None:
        shutil.copyfile(hpo.trials_csv, fitted.model_dir / "hpo_trials.csv")
        shutil.copyfile(hpo.best_params_json, fitted.model_dir / "best_params.json")
    return fitted, hpo


def _split(frame: pd.DataFrame, task: Task, settings: Settings) -> DataSplit:
    split = split_frame(frame, task, settings.training)
    if settings.features.rebalance != "none":  # training rows only: never what is scored
        balanced = rebalance(
            split.train, settings.features.rebalance, settings.features.seed, task.label
        )
        split = dataclasses.replace(split, train=balanced)
    return split


def run_training(
    settings: Settings,
    frame: pd.DataFrame | None = None,
    warm_start_from: int | None = None,
    run_dir: Path | None = None,
    task: Task | None = None,
) -> TrainingResult:
    """Train ``settings.training.family`` and the task's baselines; evaluate on the holdout; gate.

    ``task`` None: the settings' task. ``frame`` None loads the task's training set (for a
    time-based task train_start .. train_end + holdout_days). ``warm_start_from`` continues
    that registered version instead of starting fresh (families that support it). Re-running
    with the same data and settings resumes an interrupted torch run.
    """
    task = task or load_task(settings)
    if task.modality in ("image", "text"):  # multi-class: their own metrics and gates
        from e2eai.training.multiclass_run import run_multiclass_training

        return run_multiclass_training(settings, task, frame, warm_start_from, run_dir)
    t = settings.training
    chosen = training_family(task, t.family)
    if warm_start_from is not None and not chosen.supports_warm_start:
        raise TrainingConfigError(
            f"warm start applies to {', '.join(warm_startable_families())}; "
            f"training.family is {t.family!r}"
        )
    if t.hpo_trials > 0 and warm_start_from is None:
        search_family(task, t.family)
    if not task.baselines:
        raise TrainingConfigError(f"task {task.name!r} names no baseline families to gate on")
    baselines = [family(name) for name in task.baselines]
    if frame is None:
        frame = load_training_frame(settings, task)
    split = _split(frame, task, settings)
    run_dir = run_dir or settings.home / "training" / _run_id(frame, settings, warm_start_from)
    run_dir.mkdir(parents=True, exist_ok=True)
    holdout_path, reference_path = write_split_files(split, run_dir, t.seed)

    def request(work_dir: Path) -> FitRequest:
        return FitRequest(task, split.train, split.validation, t, work_dir)

    # A baseline of the chosen family is the model itself, unless the model was tuned or
    # warm-started (then the baseline is that family trained plainly).
    plain = warm_start_from is None and t.hpo_trials == 0
    models: dict[str, LoadedModel] = {}
    fitted: FittedModel | None = None
    hpo: HpoResult | None = None
    for baseline in baselines:
        if baseline.name == chosen.name and plain:
            fitted, hpo = fit_chosen(settings, chosen, request(run_dir), warm_start_from)
            models[baseline.name] = chosen.load(fitted.model_dir)
            continue
        done = baseline.fit(request(run_dir / "baselines" / baseline.name))
        models[baseline.name] = baseline.load(done.model_dir)
    if fitted is None:
        fitted, hpo = fit_chosen(settings, chosen, request(run_dir), warm_start_from)
        models["model"] = chosen.load(fitted.model_dir)
    else:
        models["model"] = models[chosen.name]

    y = labels(split.holdout, task.label, "holdout")
    threshold = settings.gates.decision_threshold
    slices = slice_columns(task, split.holdout)
    probabilities = {name: m.predict_proba(split.holdout) for name, m in models.items()}
    metrics = {name: holdout_metrics(y, p, threshold, slices) for name, p in probabilities.items()}

    champion = current_champion(settings, run_dir / "champion")
    champion_auc = None
    if champion is not None:
        probabilities["champion"] = champion.model.predict_proba(split.holdout)
        metrics["champion"] = holdout_metrics(y, probabilities["champion"], threshold, slices)
        champion_auc = metrics["champion"]["roc_auc"]

    model_auc = metrics["model"]["roc_auc"]
    if model_auc is None:
        raise TrainingDataError(
            f"the holdout ({split.holdout_window}) has one class only: no ROC-AUC"
        )
    reference = baselines[0]  # the task's first baseline is the bar a candidate must clear
    gates = [
        baseline_gate(
            model_auc,
            metrics[reference.name]["roc_auc"],
            task.gate_threshold(settings, "baseline_margin"),
            reference.title,
        ),
        champion_gate(
            model_auc,
            champion_auc,
            task.gate_threshold(settings, "champion_tolerance"),
            champion.version if champion else None,
        ),
    ]
    # The chosen family appears once, as the model, not again as its own baseline.
    curves = {
        (f"model ({t.family})" if n == "model" else n): (y, p)
        for n, p in probabilities.items()
        if not (n == t.family and models.get(n) is models["model"])
    }
    plots = {
        "roc_curve": plot_roc(curves, run_dir / "plots" / "roc_curve.png"),
        "calibration": plot_calibration(
            curves, run_dir / "plots" / "calibration.png", positive_name=task.positive_name
        ),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=to_jsonable))
    (run_dir / "gates.json").write_text(json.dumps([asdict(g) for g in gates], indent=1))
    return TrainingResult(
        family=t.family,
        run_dir=run_dir,
        model_dir=fitted.model_dir,
        holdout_path=holdout_path,
        metrics=metrics,
        gates=gates,
        plots=plots,
        params=fitted.params,
        training_window=split.window(),
        holdout_window=dict(split.holdout_window),
        task=task.name,
        split=split.describe(),
        raw_snapshot=frame.attrs.get("raw_snapshot"),
        parent_version=warm_start_from,
        champion_version=champion.version if champion else None,
        torch_summary=fitted.torch_summary,
        hpo=hpo,
        extra_artifacts={
            "metrics.json": run_dir / "metrics.json",
            "gates.json": run_dir / "gates.json",
            "reference.parquet": reference_path,
        },
    )


def run_search(
    settings: Settings, frame: pd.DataFrame | None = None, task: Task | None = None
) -> HpoResult:
    """Only the hyper-parameter search (``e2eai hpo``): trials on the training part."""
    task = task or load_task(settings)
    t = settings.training
    chosen = search_family(task, t.family)
    if frame is None:
        frame = load_training_frame(settings, task)
    split = split_frame(frame, task, t, require_holdout=False)
    run_dir = settings.home / "hpo" / _run_id(frame, settings, None)
    request = FitRequest(task, split.train, split.validation, t, run_dir)
    trials = t.hpo_trials if t.hpo_trials > 0 else None
    return chosen.search(request, run_dir, n_trials=trials, timeout_seconds=t.hpo_timeout_seconds)
