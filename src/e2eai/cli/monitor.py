"""``e2eai monitor``: one monitoring pass over the app's prediction log."""

from __future__ import annotations

import typer
from rich.table import Table

from e2eai.cli.output import JsonOption, console, emit, user_errors


def monitor_command(as_json: JsonOption = False) -> None:
    """Report every complete window logged since the last pass (drift, quality, HTML).

    What a CronJob runs on a cluster: it reads the app database (``app.database_url``),
    writes ``<home>/monitoring/reports/<window>.html|json`` and remembers where it stopped.
    """
    with user_errors():
        from e2eai.config import get_settings
        from e2eai.monitoring.monitor import monitor, reports_dir

        settings = get_settings()
        result = monitor(settings)
    if not as_json:
        table = Table("window", "rows", "labelled", "ROC-AUC", "drift share", title="monitoring")
        for w in result.windows:
            quality, drift = w["quality"] or {}, w["drift"] or {}
            auc, share = quality.get("roc_auc"), drift.get("share")
            table.add_row(
                w["window"],
                str(w["rows"]),
                str(w["labelled"]),
                "–" if auc is None else f"{auc:.4f}",
                "–" if share is None else f"{share:.2f}",
            )
        console.print(table)
        console.print(f"{len(result.windows)} new window(s); reports in {reports_dir(settings)}")
        return
    emit(result.summary(), as_json=True)


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor_command)
