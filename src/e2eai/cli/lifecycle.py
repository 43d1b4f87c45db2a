"""``e2eai run``: the whole loop, locally, on the embedded defaults."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

if TYPE_CHECKING:
    from rich.table import Table

    from e2eai.lifecycle.record import LoopRecord


_NUMBERS = {"holdout ROC-AUC", "holdout accuracy", "seconds", "mean weekly ROC-AUC"}


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    engine: Annotated[
        str,
        typer.Option(help="Train through the KFP pipeline (kfp.local) or plain calls."),
    ] = "kfp",
    scenario: Annotated[
        str,
        typer.Option(
            help="'replay': the rest of the year through the app, with the loop closed (tasks "
            "with traffic in time, such as flights); 'cycle': one champion → fine-tuned canary "
            "cycle (every task). Default: replay when the task can."
        ),
    ] = "",
    weeks: Annotated[int | None, typer.Option(min=1, help="Replay only this many weeks.")] = None,
    until: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Replay up to this day (inclusive)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The whole loop: data → Feast → champion → serve → traffic → monitor → retrain → canary."""
    from e2eai.config import get_settings
    from e2eai.lifecycle.pipeline_trainer import pipeline_trainer
    from e2eai.lifecycle.scenario import run_loop, train_in_process
    from e2eai.tasks import load_task

    if engine not in ("kfp", "inprocess"):
        raise typer.BadParameter("expected 'kfp' or 'inprocess'", param_hint="--engine")
    if scenario not in ("", "replay", "cycle"):
        raise typer.BadParameter("expected 'replay' or 'cycle'", param_hint="--scenario")
    settings = get_settings()
    with user_errors():
        task = load_task(settings)
        scenario = scenario or ("replay" if task.replays else "cycle")
        if scenario == "replay" and not task.replays:
            raise typer.BadParameter(
                f"task {task.name!r} has no traffic to replay in time", param_hint="--scenario"
            )
        trainer = pipeline_trainer(progress=console.print) if engine == "kfp" else train_in_process
        if scenario == "replay":
            _replay(settings, trainer, weeks, until.date() if until else None, as_json)
            return
        record = run_loop(
            settings, progress=lambda m: console.print(f"[bold]▶[/] {m}"), train=trainer
        )
    if as_json:
        emit(record.summary(), as_json)
    else:
        _print_summary(record)
    console.print(f"report: {record.report_path}", soft_wrap=True)  # one line to copy


def _replay(settings: Any, trainer: Any, weeks: int | None, until: Any, as_json: bool) -> None:
    from e2eai.lifecycle.closed_loop import run_replay

    record = run_replay(
        settings,
        trainer,
        weeks=weeks,
        until=until,
        progress=lambda m: console.print(f"[bold]▶[/] {m}" if not m.startswith(" ") else m),
        bar=_hour_bar,
    )
    summary = json.loads((record.run_dir / "summary.json").read_text())
    if as_json:
        emit(summary, as_json)
    else:
        _print_replay(summary)
    console.print(f"report: {record.report_path}", soft_wrap=True)


@contextlib.contextmanager
def _hour_bar(total: int) -> Iterator[Callable[[int, str], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]hours"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("", total=total)
        yield lambda n, status: bar.update(task, advance=n, description=status)


def _print_replay(s: dict[str, Any]) -> None:
    """The replay for people: quality of the three ways to run a model, and what happened."""
    from e2eai.reporting import format_metric

    console.print(
        f"[bold green]replayed[/] {s['replay']['start']}..{s['replay']['end']}: "
        f"{s['predictions']:,} predictions, {s['feedback']:,} outcomes, "
        f"{len(s['weekly'])} weeks, {s['seconds']:.0f} s, peak RSS {s['peak_rss_mb']:.0f} MB"
    )
    table = _table("model", "mean weekly ROC-AUC", "retrains")
    t = s["totals"]
    table.add_row(
        "closed loop",
        format_metric(t["mean_weekly_auc"]["closed_loop"]),
        f"{t['retrains']['closed_loop']} ({t['retrains']['closed_loop_promoted']} promoted)",
    )
    table.add_row("static", format_metric(t["mean_weekly_auc"]["static"]), "0")
    table.add_row(
        "scheduled (monthly)",
        format_metric(t["mean_weekly_auc"]["scheduled"]),
        f"{t['retrains']['scheduled']} ({t['retrains']['scheduled_deployed']} deployed)",
    )
    console.print(table)
    for r in s["retrains"]:
        console.print(f"retrain {r['at'][:10]} ({r['reason']}): v{r['version']} {r['outcome']}")
    latency = s["latency_ms"]
    console.print(
        f"latency: one flight p50 {latency['single']['p50']} / p99 {latency['single']['p99']} ms, "
        f"{latency['batch_rows_mean'] or 0:.0f} flights p50 {latency['batch']['p50']} / p99 "
        f"{latency['batch']['p99']} ms"
    )


def _print_summary(record: LoopRecord) -> None:
    """The run for people: outcome, models, canary decisions and steps, in a few lines."""
    from rich.markup import escape

    from e2eai.reporting import format_metric, format_window

    console.print(f"[bold green]loop finished[/]: {escape(record.outcome)}")
    if record.models:
        # Multi-class tasks are judged on accuracy (their gates' metric), binary on ROC-AUC.
        metric = (
            "accuracy"
            if any("accuracy" in m["metrics"].get("model", {}) for m in record.models.values())
            else "roc_auc"
        )
        title = {"accuracy": "holdout accuracy", "roc_auc": "holdout ROC-AUC"}[metric]
        models = _table("model", "family", "trained on", title, "stage")
        for role, model in record.models.items():
            models.add_row(
                f"{role} v{model['version']}",
                model["family"],
                format_window(model["training_window"]),
                format_metric(model["metrics"].get("model", {}).get(metric)),
                model["stage"],
            )
        console.print(models)
    console.print(_canary_line(record.canary))
    console.print(_monitoring_line(record.monitoring))
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


def _monitoring_line(monitoring: dict[str, Any] | None) -> str:
    from e2eai.reporting import format_metric

    if not monitoring:
        return "monitoring: no answers served"
    quality = (
        f"accuracy {format_metric(monitoring['accuracy'])}"
        if monitoring.get("accuracy") is not None
        else f"ROC-AUC {format_metric(monitoring.get('roc_auc'))}"
    )
    drift = monitoring.get("drift_detected")
    moved = ", ".join(monitoring.get("drifted") or [])
    said = "not checked" if drift is None else (f"in {moved}" if drift else "none")
    return f"monitoring: {monitoring['rows']} answers, {quality}, drift {said}"


def _canary_line(decisions: list[dict[str, Any]]) -> str:
    if not decisions:
        return "canary: not analysed"
    final = decisions[-1]
    return (
        f"canary: {len(decisions)} decision(s), final [bold]{final['action']}[/] "
        f"({final['weight_before']}% → {final['weight_after']}%)"
    )
