"""``e2eai run``: the whole loop, locally, on the embedded defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

if TYPE_CHECKING:
    from rich.table import Table

    from e2eai.lifecycle.record import LoopRecord


_NUMBERS = {"holdout ROC-AUC", "seconds"}


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    engine: Annotated[
        str,
        typer.Option(help="Train through the KFP pipeline (kfp.local) or plain calls."),
    ] = "kfp",
    as_json: JsonOption = False,
) -> None:
    """Run the whole loop: data → Feast → champion → serve → fine-tuned canary → decision."""
    from e2eai.config import get_settings
    from e2eai.lifecycle.pipeline_trainer import pipeline_trainer
    from e2eai.lifecycle.scenario import run_loop, train_in_process

    if engine not in ("kfp", "inprocess"):
        raise typer.BadParameter("expected 'kfp' or 'inprocess'", param_hint="--engine")
    with user_errors():
        trainer = pipeline_trainer(progress=console.print) if engine == "kfp" else train_in_process
        record = run_loop(
            get_settings(), progress=lambda m: console.print(f"[bold]▶[/] {m}"), train=trainer
        )
    if as_json:
        emit(record.summary(), as_json)
    else:
        _print_summary(record)
    console.print(f"report: {record.report_path}", soft_wrap=True)  # one line to copy


def _print_summary(record: LoopRecord) -> None:
    """The run for people: outcome, models, canary decisions and steps, in a few lines."""
    from rich.markup import escape

    from e2eai.reporting import format_metric, format_window

    console.print(f"[bold green]loop finished[/]: {escape(record.outcome)}")
    if record.models:
        models = _table("model", "family", "trained on", "holdout ROC-AUC", "stage")
        for role, model in record.models.items():
            models.add_row(
                f"{role} v{model['version']}",
                model["family"],
                format_window(model["training_window"]),
                format_metric(model["metrics"].get("model", {}).get("roc_auc")),
                model["stage"],
            )
        console.print(models)
    console.print(_canary_line(record.canary))
    steps = _table("step", "seconds")
    for step in record.steps:
        steps.add_row(step["step"], f"{step['seconds']:.1f}")
    console.print(steps)


def _table(*columns: str) -> Table:
    from rich.table import Table

    # No borders: the columns fit an 80-column terminal or CI log without truncation.
    table = Table(box=None, padding=(0, 2, 0, 0), header_style="bold cyan")
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column in _NUMBERS else "left")
    return table


def _canary_line(decisions: list[dict[str, Any]]) -> str:
    if not decisions:
        return "canary: not analysed"
    final = decisions[-1]
    return (
        f"canary: {len(decisions)} decision(s), final [bold]{final['action']}[/] "
        f"({final['weight_before']}% → {final['weight_after']}%)"
    )
