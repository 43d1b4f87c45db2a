"""The ``e2eai`` command line: one sub-command group per lifecycle stage.

Heavy libraries (feast, torch, kserve, evidently) are imported inside the commands, never at
module top level, so that ``e2eai --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="e2eai",
    help="End-to-end ML on Kubeflow: data → Feast → training → ONNX → KServe canary → "
    "monitoring → retraining, locally or on a cluster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _choose_task(
    task: Annotated[
        str | None,
        typer.Option(
            "--task", help="The prediction task, by name (`e2eai tasks list`). Env: E2EAI_TASK."
        ),
    ] = None,
    task_file: Annotated[
        Path | None,
        typer.Option(
            "--task-file",
            help="A TOML task file (docs/tasks.md); wins over --task. Env: E2EAI_TASK_FILE.",
        ),
    ] = None,
) -> None:
    """Chosen once per process: the environment carries it to servers and pipeline steps."""
    from e2eai.config import get_settings

    if task is not None:
        os.environ["E2EAI_TASK"] = task
    if task_file is not None:
        os.environ["E2EAI_TASK_FILE"] = str(task_file.resolve())
    get_settings.cache_clear()


# (module, command group name or None for top-level commands registered by the module)
_GROUPS: tuple[tuple[str, str | None], ...] = (
    ("e2eai.cli.lifecycle", None),
    ("e2eai.cli.tasks", "tasks"),
    ("e2eai.cli.data", "data"),
    ("e2eai.cli.features", "features"),
    ("e2eai.cli.training", None),
    ("e2eai.cli.export", None),
    ("e2eai.cli.registry", "registry"),
    ("e2eai.cli.pipeline", "pipeline"),
    ("e2eai.cli.serving", None),
    ("e2eai.cli.rollout", "rollout"),
    ("e2eai.cli.canary", "canary"),
    ("e2eai.cli.web", None),
    ("e2eai.cli.monitor", None),
    ("e2eai.cli.manifests", "manifests"),
)


def _register() -> None:
    for module_name, group in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # stage not built yet
                continue
            raise
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group, help=module.__doc__.strip().splitlines()[0])


_register()


def main() -> None:
    app()
