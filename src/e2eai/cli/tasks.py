"""Prediction tasks: list the registered ones, show one, propose a task file from data."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

if TYPE_CHECKING:
    from e2eai.config import Settings
    from e2eai.tasks import Task

app = typer.Typer(no_args_is_help=True)


def _task_named(settings: Settings, name: str) -> Task:
    """A registered task, the --task-file one by its name, or a task file by its path."""
    from e2eai.tasks import load_task, registered_tasks

    if name.endswith(".toml"):
        return load_task(settings.model_copy(update={"task_file": Path(name)}))
    if settings.task_file is not None and name not in registered_tasks():
        task = load_task(settings)
        if task.name == name:
            return task
    return load_task(settings.model_copy(update={"task": name, "task_file": None}))


def _described(settings: Settings) -> list[dict[str, Any]]:
    from e2eai.tasks import BUILTIN, load_task, registered_tasks, shipped_task_files

    files = shipped_task_files()
    tasks = []
    for name in registered_tasks():
        described = _task_named(settings, name).describe()
        origin = "built-in" if name in BUILTIN else f"task file {files[name]}"
        tasks.append({**described, "registered_as": name, "defined_by": origin})
    if settings.task_file is not None:
        described = load_task(settings).describe()
        tasks.append(
            {**described, "registered_as": None, "defined_by": f"task file {settings.task_file}"}
        )
    return tasks


@app.command("list")
def list_tasks(as_json: JsonOption = False) -> None:
    """Every registered task (and the --task-file one) with its source and columns."""
    from e2eai.config import get_settings

    with user_errors():
        settings = get_settings()
        tasks = _described(settings)
    if as_json:
        emit({"tasks": tasks}, as_json)
        return
    from rich.table import Table

    table = Table("task", "label", "split", "columns", "source")
    for task in tasks:
        columns = task["columns"]
        stored = sum(1 for c in columns if c["source"] == "feature_view")
        table.add_row(
            task["name"],
            task["label"]["rule"],
            task["split"],
            f"{len(columns)} ({stored} from Feast)",
            task["source"],
        )
    console.print(table)


@app.command("show")
def show(
    name: Annotated[
        str, typer.Argument(help="A registered task (`e2eai tasks list`) or a task file.")
    ],
    as_json: JsonOption = False,
) -> None:
    """One task's schema: label, keys, request fields and every model input."""
    from e2eai.config import get_settings

    with user_errors():
        described = _task_named(get_settings(), name).describe()
    if as_json:
        emit(described, as_json)
        return
    from rich.table import Table

    console.print(f"[bold]{described['name']}[/]: {described['description']}")
    console.print(
        f"  label {described['label']['rule']}; row id {described['row_id']}; "
        f"split {described['split']}; source {described['source']}"
    )
    table = Table("column", "kind", "source", "range / categories", "description")
    for column in described["columns"]:
        if "categories" in column:
            allowed = ", ".join(column["categories"])
        elif "minimum" in column or "maximum" in column:
            lo, hi = column.get("minimum", -math.inf), column.get("maximum", math.inf)
            allowed = f"{lo:g} … {hi:g}"
        else:
            allowed = ""
        table.add_row(
            column["name"], column["kind"], column["source"], allowed, column["description"]
        )
    console.print(table)


@app.command("infer")
def infer(
    data: Annotated[
        str,
        typer.Argument(help="CSV/Parquet path, s3:// URI or package:<pkg>/<path> to look at."),
    ],
    label: Annotated[str, typer.Option("--label", help="The column to predict.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the file here (default: stdout).")
    ] = None,
) -> None:
    """Print a proposed task file for DATA (kinds, ranges, categories) to edit and use."""
    from e2eai.config import get_settings
    from e2eai.tasks.infer import infer_task_file

    with user_errors():
        text = infer_task_file(data, label, get_settings().artifacts)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text)
    console.print(f"[bold green]task file written[/]: {output}")
