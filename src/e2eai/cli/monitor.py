"""``e2eai monitor``: one monitoring pass over the app's prediction log."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from e2eai.cli.output import JsonOption, console, emit, user_errors


def monitor_command(
    submit_to: Annotated[
        str | None,
        typer.Option(
            help="Kubeflow Pipelines endpoint to submit retraining runs to (default: "
            "pipeline.host; neither: decisions are only recorded)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Report every complete window since the last pass and submit the retrains it calls for.

    Each window gets drift, quality and HTML reports; the retraining policy decides on it.

    What a CronJob runs on a cluster: it reads the app database (``app.database_url``),
    writes ``<home>/monitoring/reports/<window>.html|json``, remembers where it stopped,
    audits every decision and submits a run of the training pipeline for each retrain.
    """
    with user_errors():
        from e2eai.app.store import AppStore
        from e2eai.config import get_settings
        from e2eai.monitoring.monitor import monitor, reports_dir
        from e2eai.monitoring.trigger import kfp_submitter, trigger_retraining
        from e2eai.tasks import load_task

        settings = get_settings()
        host = submit_to or settings.pipeline.host
        task = load_task(settings)
        with AppStore.from_settings(settings) as store:
            result = monitor(settings, store)
            submit = kfp_submitter(settings, host) if host else None
            triggered = trigger_retraining(settings, store, task, result.windows, submit)
    if not as_json:
        # Multi-class tasks are judged on accuracy, binary ones on ROC-AUC.
        metric = "roc_auc" if task.modality == "tabular" else "accuracy"
        title = {"roc_auc": "ROC-AUC", "accuracy": "accuracy"}[metric]
        table = Table("window", "rows", "labelled", title, "drift share", title="monitoring")
        for w in result.windows:
            quality, drift = w["quality"] or {}, w["drift"] or {}
            value, share = quality.get(metric), drift.get("share")
            table.add_row(
                w["window"],
                str(w["rows"]),
                str(w["labelled"]),
                "–" if value is None else f"{value:.4f}",
                "–" if share is None else f"{share:.2f}",
            )
        console.print(table)
        console.print(f"{len(result.windows)} new window(s); reports in {reports_dir(settings)}")
        for t in triggered:
            said = t.decision.get("message") or t.error
            run = f" → run {t.submitted['run_id']}" if t.submitted else ""
            console.print(f"{t.window}: {said}{run}")
        return
    emit({**result.summary(), "retraining": [asdict(t) for t in triggered]}, as_json=True)


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor_command)
