"""``run_training``: the one entry point the CLI and the KFP components call.

Trains the configured family (optionally after an HPO search, optionally warm-started from
a registered version) and both baselines, evaluates all of them on the time-based holdout,
compares against the registry's champion and returns every number, plot and path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e2eai.config import Settings
from e2eai.errors import TrainingConfigError, TrainingDataError
from e2eai.features.rebalance import rebalance
from e2eai.training.baselines import SKLEARN_FAMILIES, fit_pipeline
from e2eai.training.champion import current_champion, fetch_model_dir, open_registry
from e2eai.training.columns import labels
from e2eai.training.evaluation import holdout_metrics, plot_calibration, plot_roc
from e2eai.training.gates import GateResult, baseline_gate, champion_gate
from e2eai.training.hpo import HpoResult
from e2eai.training.model_io import LoadedModel, load_model, save_sklearn, write_info
from e2eai.training.split import TimeSplit, time_split
from e2eai.training.torch_job import TorchRunSummary


@dataclass(frozen=True)
class TrainingResult:
    """Everything one training run produced."""

    family: str
    run_dir: Path
    model_dir: Path
    holdout_path: Path
    metrics: dict[str, dict]  # "model", "logreg", "hist_gb" (+ "champion" when one exists)
    gates: list[GateResult]
    plots: dict[str, Path]
    params: dict[str, Any]
    training_window: dict[str, str]
    holdout_window: dict[str, str]
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


def load_training_frame(settings: Settings) -> pd.DataFrame:
    """The training window plus its holdout days from the feature store."""
    try:
        from e2eai.features.store import training_set
    except ImportError as exc:
        raise TrainingDataError(
            f"e2eai.features.store.training_set is not available ({exc}); pass a frame"
        ) from exc
    t = settings.training
    return training_set(settings, t.train_start, t.train_end + timedelta(days=t.holdout_days))


def _run_id(frame: pd.DataFrame, settings: Settings, warm_start_from: int | None) -> str:
    """Same data + same settings → same run directory, so a re-run resumes its checkpoint."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(settings.training.model_dump_json().encode())
    digest.update(str(warm_start_from).encode())
    return f"{settings.training.family}-{digest.hexdigest()[:12]}"


def _train_torch(
    settings: Settings, split: TimeSplit, run_dir: Path, warm_start_from: int | None
) -> tuple[Path, TorchRunSummary, HpoResult | None, dict[str, Any]]:
    from e2eai.training.finetune import finetune
    from e2eai.training.hpo import run_hpo
    from e2eai.training.tabular_spec import TabularSpec
    from e2eai.training.torch_training import fit_torch, mlp_params, write_inputs

    t = settings.training
    if warm_start_from is not None:
        registry = open_registry(settings)
        try:
            parent_dir = fetch_model_dir(
                registry, warm_start_from, run_dir / f"parent-v{warm_start_from}"
            )
        finally:
            registry.close()
        summary = finetune(parent_dir, split.train, split.validation, run_dir, t)
        params = json.loads((Path(summary.model_dir) / "model_info.json").read_text())["params"]
        return Path(summary.model_dir), summary, None, params

    train_path, validation_path = write_inputs(split.train, split.validation, run_dir / "data")
    params = mlp_params(t)
    spec = TabularSpec.fit(split.train, params)
    hpo = None
    if t.hpo_trials > 0:
        hpo = run_hpo(
            train_path,
            validation_path,
            spec,
            run_dir / "hpo",
            t,
            n_trials=t.hpo_trials,
            timeout_seconds=t.hpo_timeout_seconds,
        )
        params = mlp_params(t, **hpo.best_params)
        spec = spec.with_params(params)
    summary = fit_torch(train_path, validation_path, spec, run_dir, t, workers=t.workers)
    model_dir = Path(summary.model_dir)
    info_params = dict(params.__dict__)
    if hpo is not None:
        shutil.copyfile(hpo.trials_csv, model_dir / "hpo_trials.csv")
        shutil.copyfile(hpo.best_params_json, model_dir / "best_params.json")
    write_info(model_dir, "torch_mlp", info_params)
    return model_dir, summary, hpo, info_params


def run_training(
    settings: Settings,
    frame: pd.DataFrame | None = None,
    warm_start_from: int | None = None,
    run_dir: Path | None = None,
) -> TrainingResult:
    """Train ``settings.training.family`` and both baselines; evaluate on the holdout; gate.

    ``frame`` None loads ``training_set`` for train_start .. train_end + holdout_days.
    ``warm_start_from`` fine-tunes that registered torch version instead of starting fresh.
    Re-running with the same data and settings resumes an interrupted torch run.
    """
    t = settings.training
    if warm_start_from is not None and t.family != "torch_mlp":
        raise TrainingConfigError(
            f"warm start applies to torch_mlp; training.family is {t.family!r}"
        )
    if t.hpo_trials > 0 and t.family != "torch_mlp":
        raise TrainingConfigError(
            f"training.hpo_trials searches the torch_mlp space; training.family is {t.family!r}"
        )
    if frame is None:
        frame = load_training_frame(settings)
    split = time_split(frame, t.train_start, t.train_end, t.validation_days, t.holdout_days)
    if settings.features.rebalance != "none":  # training rows only: never what is scored
        balanced = rebalance(split.train, settings.features.rebalance, settings.features.seed)
        split = dataclasses.replace(split, train=balanced)
    run_dir = run_dir or settings.home / "training" / _run_id(frame, settings, warm_start_from)
    run_dir.mkdir(parents=True, exist_ok=True)
    holdout_path = run_dir / "holdout.parquet"
    split.holdout.to_parquet(holdout_path, index=False)

    # logreg learns from train + validation; HistGB early-stops on the validation days.
    models: dict[str, LoadedModel] = {}
    for family in SKLEARN_FAMILIES:
        pipeline = fit_pipeline(
            family,
            split.train,
            seed=t.seed,
            threads=t.sklearn_threads,
            validation=split.validation,
        )
        target = run_dir / ("model" if family == t.family else f"baselines/{family}")
        save_sklearn(pipeline, target, family, pipeline.named_steps["model"].get_params())
        models[family] = load_model(target)

    summary, hpo, params = None, None, {}
    if t.family == "torch_mlp":
        model_dir, summary, hpo, params = _train_torch(settings, split, run_dir, warm_start_from)
        models["model"] = load_model(model_dir)
    else:
        model_dir = run_dir / "model"
        models["model"] = models[t.family]
        params = json.loads((model_dir / "model_info.json").read_text())["params"]
        params = {k: v for k, v in params.items() if isinstance(v, int | float | str | bool)}

    y = labels(split.holdout, "holdout")
    threshold = settings.gates.decision_threshold
    slices = split.holdout[["carrier", "origin"]]
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
        raise TrainingDataError(f"holdout {split.holdout_end} has one class only: no ROC-AUC")
    gates = [
        baseline_gate(model_auc, metrics["logreg"]["roc_auc"], settings.gates.baseline_margin),
        champion_gate(
            model_auc,
            champion_auc,
            settings.gates.champion_tolerance,
            champion.version if champion else None,
        ),
    ]
    # The chosen family appears once, as the model, not again as its own baseline.
    curves = {
        (f"model ({t.family})" if n == "model" else n): (y, p)
        for n, p in probabilities.items()
        if n != t.family
    }
    plots = {
        "roc_curve": plot_roc(curves, run_dir / "plots" / "roc_curve.png"),
        "calibration": plot_calibration(curves, run_dir / "plots" / "calibration.png"),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=_json_default))
    (run_dir / "gates.json").write_text(json.dumps([asdict(g) for g in gates], indent=1))
    return TrainingResult(
        family=t.family,
        run_dir=run_dir,
        model_dir=model_dir,
        holdout_path=holdout_path,
        metrics=metrics,
        gates=gates,
        plots=plots,
        params=params,
        training_window=split.window(),
        holdout_window={
            "start": (split.train_end + timedelta(days=1)).isoformat(),
            "end": split.holdout_end.isoformat(),
        },
        raw_snapshot=frame.attrs.get("raw_snapshot"),
        parent_version=warm_start_from,
        champion_version=champion.version if champion else None,
        torch_summary=summary,
        hpo=hpo,
        extra_artifacts={
            "metrics.json": run_dir / "metrics.json",
            "gates.json": run_dir / "gates.json",
        },
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def run_search(settings: Settings, frame: pd.DataFrame | None = None) -> HpoResult:
    """Only the hyper-parameter search (``e2eai hpo``): trials on the training window."""
    from e2eai.training.hpo import run_hpo
    from e2eai.training.tabular_spec import TabularSpec
    from e2eai.training.torch_training import mlp_params, write_inputs

    t = settings.training
    if frame is None:
        frame = load_training_frame(settings)
    split = time_split(
        frame, t.train_start, t.train_end, t.validation_days, t.holdout_days, require_holdout=False
    )
    run_dir = settings.home / "hpo" / _run_id(frame, settings, None)
    train_path, validation_path = write_inputs(split.train, split.validation, run_dir / "data")
    spec = TabularSpec.fit(split.train, mlp_params(t))
    trials = t.hpo_trials if t.hpo_trials > 0 else None
    return run_hpo(
        train_path,
        validation_path,
        spec,
        run_dir,
        t,
        n_trials=trials,
        timeout_seconds=t.hpo_timeout_seconds,
    )
