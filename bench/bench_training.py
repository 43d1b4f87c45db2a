"""Training benchmark on real data (not a test): quality, DDP throughput, warm start.

    .venv/bin/python bench/bench_training.py [--frame jan_may.parquet]
        [--newer-frame may_jul.parquet] [--skip-finetune] [--skip-throughput]
        [--seeds 13,14,15,16] [--out bench/results/training.json]

1. Quality on the time-based holdout with the *default* settings (what ``e2eai train``
   does: Jan 1 – Apr 30, validation = its last 14 days, holdout May 1–14, 2 workers):
   torch MLP vs HistGradientBoosting vs logistic regression (issue 3 §8: torch within 0.01
   of hist_gb or better, and ≥ logreg + 0.02). With ``--seeds`` the quality run is repeated
   once per ``training.seed`` (torch initialisation and shuffling, HistGradientBoosting's
   random state) and ``quality_seeds`` gives every family's mean, min and max.
2. Throughput (samples/s) of the MLP with 1 vs 2 torchrun workers on the same data and
   epochs, and the seconds each needed to reach a target validation AUC.
3. Warm start (§4): the champion trained on Jan–Apr (default window) is fine-tuned on the
   newer window May 1 – Jun 30 (holdout Jul 1–14); compared with the stale champion on the
   new holdout and with training from scratch on the new window (time to the same AUC).

Frames are cached Parquet training sets (``e2eai.features.store.training_set``); a missing
one is built from the configured feature store. Writes one JSON object to ``--out`` and
stdout; figures go in the closing notes, not in assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from e2eai.config import Settings, TrainingSettings, get_settings
from e2eai.tasks import Task, load_task
from e2eai.training import run_training
from e2eai.training.families import load_model
from e2eai.training.finetune import finetune
from e2eai.training.mlp_family import fit_mlp, mlp_params
from e2eai.training.model_io import write_info
from e2eai.training.split import time_split
from e2eai.training.tabular_spec import TabularSpec
from e2eai.training.torch_training import write_inputs


def load_frame(path: Path, start: date, end: date) -> pd.DataFrame:
    if path.exists():
        return pd.read_parquet(path)
    settings = get_settings()
    frame = load_task(settings).training_set(settings, start, end)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    return frame


def seconds_to_auc(history: list[dict], seconds: float, target: float) -> float | None:
    """Training seconds until the validation AUC first reached ``target``.

    Epoch 0 is the starting point (a warm start's champion weights): reaching the target
    there costs 0 s. Later epochs are charged the run's mean seconds per epoch.
    """
    epochs = len(history) - 1
    for row in history:
        if row["validation_auc"] >= target:
            return seconds * row["epoch"] / max(epochs, 1)
    return None


def quality(frame: pd.DataFrame, home: Path, seed: int | None = None) -> tuple[dict, dict]:
    """Default settings, 2 workers: every family's holdout metrics and the gates."""
    training = TrainingSettings(workers=2)
    if seed is not None:
        training = training.model_copy(update={"seed": seed})
    settings = Settings(home=home, training=training)
    started = time.perf_counter()
    result = run_training(settings, frame)
    report: dict = {
        name: {k: result.metrics[name][k] for k in ("roc_auc", "pr_auc", "log_loss", "brier")}
        for name in ("model", "hist_gb", "logreg")
    }
    summary = result.torch_summary
    report.update(
        {
            "run_training_seconds": time.perf_counter() - started,
            "torch_train_seconds": summary.train_seconds,
            "torch_epochs_run": summary.epochs_run,
            "torch_best_epoch": summary.best_epoch,
            "torch_best_validation_auc": summary.best_validation_auc,
            "gates": {g.name: g.passed for g in result.gates},
            "torch_minus_hist_gb": result.metrics["model"]["roc_auc"]
            - result.metrics["hist_gb"]["roc_auc"],
            "torch_minus_logreg": result.metrics["model"]["roc_auc"]
            - result.metrics["logreg"]["roc_auc"],
            "hist_gb_minus_logreg": result.metrics["hist_gb"]["roc_auc"]
            - result.metrics["logreg"]["roc_auc"],
            "params": result.params,
        }
    )
    return report, {"best_validation_auc": summary.best_validation_auc}


def across_seeds(runs: dict[int, dict]) -> dict:
    """Every family's holdout metrics over the seeds: mean, min, max (and the per-seed runs)."""
    summary: dict = {"seeds": sorted(runs)}
    for family in ("model", "hist_gb", "logreg"):
        summary[family] = {
            metric: {
                "mean": sum(r[family][metric] for r in runs.values()) / len(runs),
                "min": min(r[family][metric] for r in runs.values()),
                "max": max(r[family][metric] for r in runs.values()),
            }
            for metric in ("roc_auc", "pr_auc", "log_loss", "brier")
        }
    summary["runs"] = {str(seed): run for seed, run in runs.items()}
    return summary


def throughput(frame: pd.DataFrame, home: Path, target: float, epochs: int, task: Task) -> dict:
    """Same data, fixed epochs (no early stop), 1 vs 2 workers."""
    training = TrainingSettings(epochs=epochs, early_stopping_patience=99)
    split = time_split(
        frame,
        task,
        training.train_start,
        training.train_end,
        training.validation_days,
        training.holdout_days,
    )
    train_path, validation_path = write_inputs(split.train, split.validation, home / "tp")
    spec = TabularSpec.fit(split.train, mlp_params(training), task)
    report: dict = {"target_validation_auc": target, "epochs": epochs}
    for workers in (1, 2):
        started = time.perf_counter()
        s = fit_mlp(
            spec,
            task.label,
            train_path,
            validation_path,
            home / f"tp-{workers}",
            training,
            workers,
        )
        report[f"workers_{workers}"] = {
            "samples_per_second": s.samples_per_second,
            "train_seconds": s.train_seconds,
            "wall_seconds": time.perf_counter() - started,
            "seconds_to_target_auc": seconds_to_auc(s.history, s.train_seconds, target),
            "best_validation_auc": s.best_validation_auc,
            "validation_auc_per_epoch": [h["validation_auc"] for h in s.history],
        }
    return report


def warm_start(frame: pd.DataFrame, home: Path, task: Task) -> dict:
    """Champion: default window Jan–Apr. New window May 1 – Jun 30, holdout Jul 1–14."""
    old = TrainingSettings(workers=1)
    new = old.model_copy(update={"train_start": date(2013, 5, 1), "train_end": date(2013, 6, 30)})
    old_split = time_split(
        frame, task, old.train_start, old.train_end, old.validation_days, 0, require_holdout=False
    )
    new_split = time_split(
        frame, task, new.train_start, new.train_end, new.validation_days, new.holdout_days
    )
    y = new_split.holdout[task.label]

    def fresh(split, settings, name):
        paths = write_inputs(split.train, split.validation, home / name / "data")
        spec = TabularSpec.fit(split.train, mlp_params(settings), task)
        summary = fit_mlp(spec, task.label, *paths, home / name, settings, workers=1)
        write_info(Path(summary.model_dir), "torch_mlp", task, {})
        return summary

    def holdout_auc(summary) -> float:
        model = load_model(Path(summary.model_dir))
        return float(roc_auc_score(y, model.predict_proba(new_split.holdout)))

    champion = fresh(old_split, old, "champion")
    tuned = finetune(
        Path(champion.model_dir),
        new_split.train,
        new_split.validation,
        home / "finetuned",
        new,
        task,
        workers=1,
    )
    scratch = fresh(new_split, new, "scratch")
    # The same AUC for both: the lower of the two runs' best validation AUCs.
    target = min(tuned.best_validation_auc, scratch.best_validation_auc)
    return {
        "champion_window": f"{old.train_start}..{old.train_end}",
        "new_window": f"{new.train_start}..{new.train_end}",
        "holdout": "{start}..{end}".format(**new_split.holdout_window),
        "holdout_rows": len(new_split.holdout),
        "stale_champion_roc_auc": holdout_auc(champion),
        "finetuned_roc_auc": holdout_auc(tuned),
        "scratch_roc_auc": holdout_auc(scratch),
        "validation_auc_target": target,
        "finetune_seconds_to_target": seconds_to_auc(tuned.history, tuned.train_seconds, target),
        "scratch_seconds_to_target": seconds_to_auc(scratch.history, scratch.train_seconds, target),
        # Epoch granularity ties the two at the lower target; the stricter question is how
        # long scratch needs to reach what the fine-tune reached (None: not within epochs).
        "finetune_best_validation_auc": tuned.best_validation_auc,
        "scratch_seconds_to_finetune_best": seconds_to_auc(
            scratch.history, scratch.train_seconds, tuned.best_validation_auc
        ),
        "finetune_seconds_to_finetune_best": seconds_to_auc(
            tuned.history, tuned.train_seconds, tuned.best_validation_auc
        ),
        "finetune_train_seconds": tuned.train_seconds,
        "scratch_train_seconds": scratch.train_seconds,
        "finetune_epochs": tuned.epochs_run,
        "scratch_epochs": scratch.epochs_run,
        "finetune_validation_auc_per_epoch": [h["validation_auc"] for h in tuned.history],
        "scratch_validation_auc_per_epoch": [h["validation_auc"] for h in scratch.history],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame", type=Path, default=Path("runs/bench/jan_may.parquet"))
    parser.add_argument("--newer-frame", type=Path, default=Path("runs/bench/may_jul.parquet"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/training.json"))
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--seeds", default="", help="comma-separated training seeds for the quality runs"
    )
    parser.add_argument("--throughput-epochs", type=int, default=3)
    args = parser.parse_args()
    frame = load_frame(args.frame, date(2013, 1, 1), date(2013, 5, 14))
    home = Path(tempfile.mkdtemp(prefix="e2eai-bench-"))
    report: dict = {
        "rows": len(frame),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "defaults": TrainingSettings().model_dump(mode="json"),
    }

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if seeds:
        # The first seed's run stands for the default one (its figures and throughput target).
        started = time.perf_counter()
        runs = {seed: quality(frame, home / f"quality-{seed}", seed) for seed in seeds}
        report["quality"], best = runs[seeds[0]]
        report["quality_seeds"] = across_seeds({seed: run for seed, (run, _) in runs.items()})
        report["quality_seeds"]["seconds"] = time.perf_counter() - started
        summary = {k: v for k, v in report["quality_seeds"].items() if k != "runs"}
        print(json.dumps(summary), file=sys.stderr)
    else:
        report["quality"], best = quality(frame, home / "quality")
        print(json.dumps(report["quality"]), file=sys.stderr)
    target = best["best_validation_auc"] - 0.005
    task = load_task(get_settings())
    if not args.skip_throughput:
        report["throughput"] = throughput(frame, home, target, args.throughput_epochs, task)
        print(json.dumps(report["throughput"]), file=sys.stderr)

    if not args.skip_finetune:
        newer = load_frame(args.newer_frame, date(2013, 5, 1), date(2013, 7, 14))
        both = pd.concat([frame, newer], ignore_index=True).drop_duplicates(task.row_id)
        report["warm_start"] = warm_start(both, home / "warm", task)
    report["load_average_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=1, default=str)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
