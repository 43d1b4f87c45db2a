"""Train models (``e2eai train``) and search hyper-parameters (``e2eai hpo``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

Family = Annotated[
    str | None, typer.Option("--family", help="torch_mlp, hist_gb or logreg (training.family).")
]
Workers = Annotated[
    int | None, typer.Option("--workers", min=1, help="torchrun processes (training.workers).")
]
Day = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"])]


def _settings(**training: Any):
    from e2eai.config import get_settings

    settings = get_settings()
    overrides = {k: v for k, v in training.items() if v is not None}
    for key in ("train_start", "train_end"):
        if isinstance(overrides.get(key), datetime):
            overrides[key] = overrides[key].date()
    if not overrides:
        return settings
    from e2eai.config import TrainingSettings

    merged = TrainingSettings.model_validate({**settings.training.model_dump(), **overrides})
    return settings.model_copy(update={"training": merged})


def _headline(result_metrics: dict[str, dict]) -> dict[str, dict]:
    keys = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "rows")
    return {name: {k: m.get(k) for k in keys} for name, m in result_metrics.items()}


def train(
    family: Family = None,
    workers: Workers = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    train_start: Day = None,
    train_end: Day = None,
    hpo_trials: Annotated[
        int | None, typer.Option("--hpo-trials", min=0, help="Optuna trials before training.")
    ] = None,
    warm_start_from: Annotated[
        int | None, typer.Option("--warm-start-from", min=1, help="Fine-tune this version.")
    ] = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register a candidate version.")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Train the model and both baselines, evaluate, gate, register a candidate.

    Trains training.family (after an Optuna search when --hpo-trials > 0, or fine-tuned from
    --warm-start-from), logistic regression and HistGradientBoosting on the time-based split,
    reports holdout metrics and gate verdicts, and registers the model as a candidate.
    """
    with user_errors():
        from e2eai.training import run_training

        settings = _settings(
            family=family,
            workers=workers,
            epochs=epochs,
            train_start=train_start,
            train_end=train_end,
            hpo_trials=hpo_trials,
        )
        from e2eai.tasks import load_task

        t = settings.training
        task = load_task(settings)
        data = (
            f"{t.train_start}..{t.train_end}, holdout {t.holdout_days} days"
            if task.time_based
            else f"a stratified split (holdout {t.holdout_fraction:.0%} of the rows)"
        )
        console.print(f"{task.name}: training {t.family} on {data} ({t.workers} worker(s))")
        result = run_training(settings, warm_start_from=warm_start_from)
        version = None
        if register:
            from e2eai.training.registration import register_candidate

            version = register_candidate(settings, result).version
    summary = result.summary()
    emit(
        {
            "model_version": version,
            "family": result.family,
            "metrics": _headline(result.metrics),
            "gates_passed": result.passed,
            "gates": summary["gates"],
            "model_dir": summary["model_dir"],
            "plots": summary["plots"],
            "params": summary["params"],
            "training_window": summary["training_window"],
            "holdout_window": summary["holdout_window"],
            "parent_version": result.parent_version,
            "champion_version": result.champion_version,
            "epochs_run": summary["epochs_run"],
            "resumed_from_epoch": summary["resumed_from_epoch"],
            "hpo": summary["hpo"],
        },
        as_json,
        title="trained",
    )


def hpo(
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trial budget.")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="Time budget in seconds.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    as_json: JsonOption = False,
) -> None:
    """Search the MLP's hyper-parameters with Optuna (TPE + median pruning).

    Trials train on the training window and are judged on its validation days; prints the
    best point and the path of the trials table (CSV).
    """
    with user_errors():
        from e2eai.training.run import run_search

        settings = _settings(hpo_trials=trials, hpo_timeout_seconds=timeout, epochs=epochs)
        result = run_search(settings)
    emit(
        {
            "best_params": result.best_params,
            "best_validation_auc": result.best_validation_auc,
            "trials": result.trials,
            "pruned": result.pruned,
            "trials_csv": str(result.trials_csv),
            "best_params_json": str(result.best_params_json),
        },
        as_json,
        title="hyper-parameter search",
    )


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``hpo`` as top-level commands."""
    app.command("train")(train)
    app.command("hpo")(hpo)
