"""Hyper-parameter search with Optuna: TPE sampling, median pruning, a trial or time budget."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2eai.config import TrainingSettings
from e2eai.training.search_space import SEARCH_SPACE, suggest
from e2eai.training.tabular_spec import TabularSpec
from e2eai.training.torch_training import fit_torch, mlp_params


@dataclass(frozen=True)
class HpoResult:
    """Best point found, its validation ROC-AUC and where the trials table is."""

    best_params: dict[str, Any]
    best_validation_auc: float
    trials: int
    pruned: int
    trials_csv: Path
    best_params_json: Path


def _digest(params: object) -> str:
    return hashlib.sha256(repr(params).encode()).hexdigest()[:8]


def run_hpo(
    train_path: Path,
    validation_path: Path,
    base_spec: TabularSpec,
    out_dir: Path,
    training: TrainingSettings,
    n_trials: int | None,
    timeout_seconds: float | None,
) -> HpoResult:
    """Search ``SEARCH_SPACE``; each trial trains in-process and reports AUC per epoch."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out_dir.mkdir(parents=True, exist_ok=True)

    def objective(trial: optuna.Trial) -> float:
        params = mlp_params(training, **suggest(trial, SEARCH_SPACE))

        def report(epoch: int, auc: float) -> None:
            trial.report(auc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (validation AUC {auc:.4f})")

        summary = fit_torch(
            train_path,
            validation_path,
            base_spec.with_params(params),
            # Named by the parameters too: a re-run resumes a trial only with the same point.
            out_dir / f"trial-{trial.number:03d}-{_digest(params)}",
            training,
            workers=1,
            on_epoch_end=report,
        )
        return summary.best_validation_auc

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=training.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        study_name="e2eai-mlp",
    )
    study.optimize(objective, n_trials=n_trials, timeout=timeout_seconds)
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
