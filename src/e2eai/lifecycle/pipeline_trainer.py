"""Training through the KFP training pipeline, run locally by kfp.local (as on a cluster)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from e2eai.config import Settings
from e2eai.lifecycle.record import Progress, TrainFn, TrainingOutcome


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send everything written to file descriptor 2 (this process's logging and the task
    subprocesses kfp.local starts) to ``path`` for the duration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with path.open("ab") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def pipeline_trainer(project_dir: Path | None = None, progress: Progress = print) -> TrainFn:
    """A ``TrainFn`` that runs the KFP training pipeline locally with kfp.local.

    The task logs go to ``<home>/pipelines/kfp-local.log``; ``progress`` hears where, and
    how each run ended.
    """
    from e2eai.errors import PipelineError
    from e2eai.pipeline.loader import load_training_pipeline
    from e2eai.pipeline.local_run import run_locally
    from e2eai.pipeline.run_settings import settings_to_json

    pipeline = load_training_pipeline(project_dir)

    def train(settings: Settings, warm_start_from: int | None) -> TrainingOutcome:
        arguments = {
            "data_start": "",
            "data_end": "",
            "train_start": settings.training.train_start.isoformat(),
            "train_end": settings.training.train_end.isoformat(),
            "family": "",
            "hpo_trials": -1,
            "warm_start_version": warm_start_from or 0,
            "canary_percent": 10,
            "settings_json": settings_to_json(settings),
        }
        log = settings.home / "pipelines" / "kfp-local.log"
        progress(f"  kfp.local pipeline run (task logs: {log})")
        with stderr_to(log):
            result = run_locally(pipeline, arguments, settings)
        progress(f"  pipeline {result.status} in {result.seconds:.0f} s")
        if result.status != "succeeded":
            raise PipelineError(f"training pipeline run failed: {result.error}")
        gates = [g.get("message", str(g)) for g in result.gates]
        return TrainingOutcome(
            bool(result.gates_passed), gates, result.model_version, reports=result.reports
        )

    return train
