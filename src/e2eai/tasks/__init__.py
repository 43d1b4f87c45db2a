"""Tasks: the seam between one prediction problem and the platform's stages.

The process's task is chosen once, by the settings: ``E2EAI_TASK=<registered name>`` or
``E2EAI_TASK_FILE=<path>`` (``--task`` / ``--task-file`` on the CLI). Registered names are
the built-in tasks written in Python (``flights``, ``fashion``, ``support-triage``) and the
task files shipped in ``e2eai/tasks/files/`` (``credit``). :func:`load_task` is what every
stage calls when it is not handed a task.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from e2eai.errors import E2eaiError
from e2eai.tasks.base import FeatureTables, Task

if TYPE_CHECKING:
    from e2eai.config import Settings

__all__ = ["FeatureTables", "Task", "TaskError", "load_task", "registered_tasks"]


class TaskError(E2eaiError):
    """An unknown task name, or a task file that cannot describe a task."""


def _flights(settings: Settings) -> Task:
    from e2eai.tasks.flights import FlightTask

    return FlightTask.from_settings(settings)


def _fashion(settings: Settings) -> Task:
    from e2eai.tasks.fashion import FashionTask

    return FashionTask.from_settings(settings)


def _support_triage(settings: Settings) -> Task:
    from e2eai.tasks.support_triage import SupportTriageTask

    return SupportTriageTask.from_settings(settings)


BUILTIN: dict[str, Callable[[Settings], Task]] = {
    "flights": _flights,
    "fashion": _fashion,
    "support-triage": _support_triage,
}
"""Tasks written in Python, by name."""


def shipped_task_files() -> dict[str, Path]:
    """Task files that come with e2eai (``e2eai/tasks/files/<name>.toml``), by name."""
    folder = resources.files("e2eai.tasks") / "files"
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def registered_tasks() -> list[str]:
    """Every task name ``E2EAI_TASK`` accepts."""
    return sorted({*BUILTIN, *shipped_task_files()})


@lru_cache(maxsize=16)
def _from_file(path: Path, mtime_ns: int, settings: Settings) -> Task:
    from e2eai.tasks.tabular import load_task_file

    return load_task_file(path, settings)


def load_task(settings: Settings) -> Task:
    """The task the settings choose (``task_file`` wins over ``task``)."""
    if settings.task_file is not None:
        path = Path(settings.task_file).resolve()
        if not path.is_file():
            raise TaskError(f"{settings.task_file}: task file not found")
        return _from_file(path, path.stat().st_mtime_ns, settings)
    name = settings.task
    if name in BUILTIN:
        return BUILTIN[name](settings)
    files = shipped_task_files()
    if name in files:
        return _from_file(files[name], files[name].stat().st_mtime_ns, settings)
    raise TaskError(
        f"unknown task {name!r}: registered tasks are {', '.join(registered_tasks())}; "
        "or set E2EAI_TASK_FILE to a task file"
    )
