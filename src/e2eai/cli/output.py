"""How commands report: one JSON object with ``--json``, a readable summary otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from e2eai import jsonable
from e2eai.errors import E2eaiError

T = TypeVar("T")

# Progress and summaries go to stderr so that stdout carries exactly one JSON object.
console = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
"""Every command's ``--json`` flag: machine output on stdout instead of the summary."""


def emit(result: dict[str, Any], as_json: bool, title: str = "") -> None:
    """Print ``result``: JSON on stdout, or a key/value summary for people."""
    if as_json:
        sys.stdout.write(jsonable.dumps(result, indent=2) + "\n")
        return
    if title:
        console.print(f"[bold green]{title}[/]")
    for key, value in result.items():
        text = jsonable.dumps(value) if isinstance(value, dict | list) else value
        console.print(f"  [cyan]{key}[/]: {text}")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn e2eai's own errors into one red line and exit code 2, without a traceback."""
    try:
        yield
    except E2eaiError as exc:
        # One line whatever the terminal width: scripts grep it, people read it in logs.
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(code=2) from exc


def run_command(fn: Callable[[], T]) -> T:
    with user_errors():
        return fn()
