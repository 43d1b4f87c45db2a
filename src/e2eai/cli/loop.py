"""``e2eai run``: the whole loop, locally, on the embedded defaults."""

from __future__ import annotations

from typing import Annotated

import typer

from e2eai.cli.output import console, emit, user_errors


def register(app: typer.Typer) -> None:
    app.command("run")(run)


JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def run(as_json: JsonOption = False) -> None:
    """Run the whole loop: data → Feast → champion → serve → fine-tuned canary → decision."""
    from e2eai.config import get_settings
    from e2eai.loop import run_loop

    with user_errors():
        record = run_loop(get_settings(), progress=lambda m: console.print(f"[bold]▶[/] {m}"))
    emit(record.summary(), as_json, "loop finished")
    console.print(f"report: {record.run_dir / 'report.html'}")
