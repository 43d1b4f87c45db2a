"""Hyper-parameter search with Optuna: TPE sampling, median pruning, a trial or time budget.

The study is the same for every family; the family supplies the space (its
``search_space``) and the objective: train one point in a trial directory, reporting the
validation metric after each epoch, and return the best.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from e2eai.training.search_space import ParamSpec, suggest

EpochReport = Callable[[int, float], None]
Objective = Callable[[dict[str, Any], Path, EpochReport], float]
"""(point, trial directory, per-epoch report) → the trial's best validation metric."""


@dataclass(frozen=True)
class HpoResult:
    """Best point found, its validation ROC-AUC and where the trials table is."""

    best_params: dict[str, Any]
    best_validation_auc: float
    trials: int
    pruned: int
    trials_csv: Path
    best_params_json: Path


def _digest(point: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:8]


def run_study(
    objective: Objective,
    space: tuple[ParamSpec, ...],
    out_dir: Path,
    seed: int,
    n_trials: int | None,
    timeout_seconds: float | None,
    study_name: str,
    sampler: Literal["tpe", "random"] = "tpe",
) -> HpoResult:
    """Search ``space``; each trial runs ``objective`` in ``out_dir/trial-NNN-<digest>``.

    ``sampler``: Optuna's TPE (the default) or plain random search (seeded either way).

    The directory is named by the point too, so a re-run resumes a trial only with the same
    point. A trial whose reported metric falls below the median of earlier trials at the
    same epoch is pruned.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out_dir.mkdir(parents=True, exist_ok=True)

    def optuna_objective(trial: optuna.Trial) -> float:
        point = suggest(trial, space)

        def report(epoch: int, value: float) -> None:
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (validation {value:.4f})")

        return objective(point, out_dir / f"trial-{trial.number:03d}-{_digest(point)}", report)

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed)
        if sampler == "random"
        else optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        study_name=study_name,
    )
    study.optimize(optuna_objective, n_trials=n_trials, timeout=timeout_seconds)
    trials_csv = out_dir / "hpo_trials.csv"
    study.trials_dataframe().to_csv(trials_csv, index=False)
    best_json = out_dir / "best_params.json"
    best_json.write_text(json.dumps(study.best_params, indent=1))
    states = [t.state for t in study.trials]
    return HpoResult(
        best_params=dict(study.best_params),
        best_validation_auc=float(study.best_value),
        trials=len(study.trials),
        pruned=sum(s == optuna.trial.TrialState.PRUNED for s in states),
        trials_csv=trials_csv,
        best_params_json=best_json,
    )
