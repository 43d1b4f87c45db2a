"""``e2eai --help`` reads well: every sub-command listed with its one-line description."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

E2EAI = str(Path(sys.executable).with_name("e2eai"))


def _help(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [E2EAI, *args, "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _commands(*path: str) -> dict[str, str]:
    """Sub-commands of ``e2eai <path>`` with their short help, from the CLI object itself."""
    from e2eai.cli import app

    group = typer.main.get_command(app)
    for name in path:
        group = group.commands[name]
    return {name: cmd.get_short_help_str(limit=500) for name, cmd in group.commands.items()}


def _listed(help_text: str) -> dict[str, str]:
    """Rows of the help's Commands panel: name → description."""
    panel = help_text.split("Commands")[-1]
    rows = re.findall(r"^│ (\S+)\s{2,}(.*?)\s*│$", panel, flags=re.MULTILINE)
    return dict(rows)


def test_top_level_help_lists_every_stage_with_a_description() -> None:
    expected = _commands()
    assert {"data", "features"} <= set(expected)
    listed = _listed(_help())
    assert set(listed) == set(expected)
    for name, description in expected.items():
        assert description, f"`e2eai {name}` has no description"
        assert listed[name] == description, name


@pytest.mark.parametrize(
    ("group", "commands"),
    [
        ("data", {"prepare"}),
        ("features", {"build", "apply", "materialize", "training-set", "online"}),
    ],
)
def test_stage_help_lists_its_commands(group: str, commands: set[str]) -> None:
    expected = _commands(group)
    assert set(expected) == commands
    listed = _listed(_help(group))
    assert listed == expected
    assert all(listed.values())
