"""``e2eai run``: the whole loop, locally, on the embedded defaults."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from e2eai.cli.output import console, emit, user_errors

if TYPE_CHECKING:
    from e2eai.loop import TrainFn

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def register(app: typer.Typer) -> None:
    app.command("run")(run)


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
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


def pipeline_trainer(project_dir: Path | None = None) -> TrainFn:
    """Train through the KFP training pipeline, run locally by kfp.local (as on a cluster)."""
    from e2eai.errors import PipelineError
    from e2eai.loop import TrainingOutcome
    from e2eai.pipeline.loader import load_training_pipeline
    from e2eai.pipeline.local_run import run_locally
    from e2eai.pipeline.run_settings import settings_to_json

    pipeline = load_training_pipeline(project_dir)

    def train(settings, warm_start_from):
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
        console.print(f"  kfp.local pipeline run (task logs: {log})")
        with _stderr_to(log):
            result = run_locally(pipeline, arguments, settings)
        console.print(f"  pipeline {result.status} in {result.seconds:.0f} s")
        if result.status != "succeeded":
            raise PipelineError(f"training pipeline run failed: {result.error}")
        gates = [g.get("message", str(g)) for g in result.gates]
        return TrainingOutcome(
            bool(result.gates_passed), gates, result.model_version, reports=result.reports
        )

    return train


def run(
    engine: Annotated[
        str,
        typer.Option(help="Train through the KFP pipeline (kfp.local) or plain calls."),
    ] = "kfp",
    as_json: JsonOption = False,
) -> None:
    """Run the whole loop: data → Feast → champion → serve → fine-tuned canary → decision."""
    from e2eai.config import get_settings
    from e2eai.loop import run_loop, train_in_process

    if engine not in ("kfp", "inprocess"):
        raise typer.BadParameter("expected 'kfp' or 'inprocess'", param_hint="--engine")
    with user_errors():
        trainer = pipeline_trainer() if engine == "kfp" else train_in_process
        record = run_loop(
            get_settings(), progress=lambda m: console.print(f"[bold]▶[/] {m}"), train=trainer
        )
    emit(record.summary(), as_json, "loop finished")
    console.print(f"report: {record.run_dir / 'report.html'}")
