"""Training benchmark on real data (not a test): quality, DDP throughput, warm start.

    .venv/bin/python bench/bench_training.py [--frame cached.parquet] [--skip-finetune]

1. Quality on the time-based holdout: torch MLP vs HistGradientBoosting vs logistic
   regression (issue 3 §8: torch within 0.01 of hist_gb or better, and ≥ logreg + 0.02).
2. Throughput (samples/s) of the MLP with 1 vs 2 torchrun workers, and the seconds each
   needed to reach a target validation AUC.
3. Warm start (§4): a champion trained on Jan–Feb is fine-tuned on Mar–Apr; compare with
   the stale champion on the new holdout and with training from scratch (time to its AUC).
Prints one JSON object; figures go in the closing notes, not in assertions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from e2eai import schema
from e2eai.config import Settings, TrainingSettings, get_settings
from e2eai.training import run_training
from e2eai.training.finetune import finetune
from e2eai.training.model_io import load_model, write_info
from e2eai.training.split import time_split
from e2eai.training.tabular_spec import TabularSpec
from e2eai.training.torch_training import fit_torch, mlp_params, write_inputs


def load_frame(path: Path | None, start: date, end: date) -> pd.DataFrame:
    if path is not None and path.exists():
        return pd.read_parquet(path)
    from e2eai.features.store import training_set

    frame = training_set(get_settings(), start, end)
    if path is not None:
        frame.to_parquet(path)
    return frame


def seconds_to_auc(history: list[dict], seconds: float, target: float) -> float | None:
    """Training seconds until the validation AUC first reached ``target`` (epochs even)."""
    epochs = len(history) - 1
    for row in history:
        if row["epoch"] > 0 and row["validation_auc"] >= target:
            return seconds * row["epoch"] / max(epochs, 1)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame", type=Path, default=Path("runs/bench/jan_may.parquet"))
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    args.frame.parent.mkdir(parents=True, exist_ok=True)
    frame = load_frame(args.frame, date(2013, 1, 1), date(2013, 5, 14))
    home = Path(tempfile.mkdtemp(prefix="e2eai-bench-"))
    report: dict = {"rows": len(frame)}

    # 1. quality: Jan–Mar window, 14-day holdout, default hyper-parameters, 2 workers
    training = TrainingSettings(
        train_start=date(2013, 1, 1), train_end=date(2013, 3, 31), workers=2, epochs=args.epochs
    )
    settings = Settings(home=home, training=training)
    started = time.perf_counter()
    result = run_training(settings, frame)
    report["quality"] = {
        name: {k: result.metrics[name][k] for k in ("roc_auc", "pr_auc", "log_loss", "brier")}
        for name in ("model", "hist_gb", "logreg")
    }
    report["quality"]["seconds"] = time.perf_counter() - started
    report["quality"]["gates"] = {g.name: g.passed for g in result.gates}
    report["quality"]["torch_minus_hist_gb"] = (
        result.metrics["model"]["roc_auc"] - result.metrics["hist_gb"]["roc_auc"]
    )
    report["quality"]["torch_minus_logreg"] = (
        result.metrics["model"]["roc_auc"] - result.metrics["logreg"]["roc_auc"]
    )
    print(json.dumps(report), file=sys.stderr)

    # 2. throughput: same data, fixed epochs, 1 vs 2 workers
    split = time_split(
        frame,
        training.train_start,
        training.train_end,
        training.validation_days,
        training.holdout_days,
    )
    train_path, validation_path = write_inputs(split.train, split.validation, home / "tp")
    spec = TabularSpec.fit(split.train, mlp_params(training))
    fixed = training.model_copy(update={"epochs": 3, "early_stopping_patience": 99})
    target = result.torch_summary.best_validation_auc - 0.005
    report["throughput"] = {"target_validation_auc": target}
    for workers in (1, 2):
        s = fit_torch(train_path, validation_path, spec, home / f"tp-{workers}", fixed, workers)
        report["throughput"][f"workers_{workers}"] = {
            "samples_per_second": s.samples_per_second,
            "train_seconds": s.train_seconds,
            "seconds_to_target_auc": seconds_to_auc(s.history, s.train_seconds, target),
            "best_validation_auc": s.best_validation_auc,
        }
    print(json.dumps(report), file=sys.stderr)

    if not args.skip_finetune:
        report["warm_start"] = warm_start(frame, home, args.epochs)
    print(json.dumps(report, indent=1))
    return 0


def warm_start(frame: pd.DataFrame, home: Path, epochs: int) -> dict:
    """Champion: Jan–Feb. New window: Mar 1–Apr 30 (holdout May 1–14)."""
    old = TrainingSettings(
        train_start=date(2013, 1, 1), train_end=date(2013, 2, 28), workers=1, epochs=epochs
    )
    new = old.model_copy(update={"train_start": date(2013, 3, 1), "train_end": date(2013, 4, 30)})
    old_split = time_split(
        frame, old.train_start, old.train_end, old.validation_days, 0, require_holdout=False
    )
    new_split = time_split(
        frame, new.train_start, new.train_end, new.validation_days, new.holdout_days
    )
    y = new_split.holdout[schema.LABEL]

    def fresh(split, settings, name):
        paths = write_inputs(split.train, split.validation, home / name / "data")
        spec = TabularSpec.fit(split.train, mlp_params(settings))
        summary = fit_torch(*paths, spec, home / name, settings, workers=1)
        write_info(Path(summary.model_dir), "torch_mlp", {})
        return summary

    champion = fresh(old_split, old, "champion")
    champion_model = load_model(Path(champion.model_dir))
    stale_auc = roc_auc_score(y, champion_model.predict_proba(new_split.holdout))
    tuned = finetune(
        Path(champion.model_dir),
        new_split.train,
        new_split.validation,
        home / "finetuned",
        new,
        workers=1,
    )
    tuned_auc = roc_auc_score(y, load_model(Path(tuned.model_dir)).predict_proba(new_split.holdout))
    scratch = fresh(new_split, new, "scratch")
    scratch_auc = roc_auc_score(
        y, load_model(Path(scratch.model_dir)).predict_proba(new_split.holdout)
    )
    target = min(tuned.best_validation_auc, scratch.best_validation_auc)
    return {
        "holdout": f"{new.train_end + timedelta(days=1)}..{new.train_end + timedelta(days=14)}",
        "stale_champion_roc_auc": stale_auc,
        "finetuned_roc_auc": tuned_auc,
        "scratch_roc_auc": scratch_auc,
        "validation_auc_target": target,
        "finetune_seconds_to_target": seconds_to_auc(tuned.history, tuned.train_seconds, target),
        "scratch_seconds_to_target": seconds_to_auc(scratch.history, scratch.train_seconds, target),
        "finetune_epochs": tuned.epochs_run,
        "scratch_epochs": scratch.epochs_run,
        "finetune_start_validation_auc": tuned.history[0]["validation_auc"],
    }


if __name__ == "__main__":
    sys.exit(main())
