"""How commands report: one JSON object with ``--json``, a readable summary otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from e2eai.errors import E2eaiError

T = TypeVar("T")

# Progress and summaries go to stderr so that stdout carries exactly one JSON object.
console = Console(stderr=True)


def _default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit(result: dict[str, Any], as_json: bool, title: str = "") -> None:
    """Print ``result``: JSON on stdout, or a key/value summary for people."""
    if as_json:
        sys.stdout.write(json.dumps(result, default=_default, indent=2) + "\n")
        return
    if title:
        console.print(f"[bold green]{title}[/]")
    for key, value in result.items():
        text = json.dumps(value, default=_default) if isinstance(value, dict | list) else value
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
