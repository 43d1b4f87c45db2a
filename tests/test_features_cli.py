"""The ``e2eai features`` commands and the real ``feast`` CLI on the session's feature repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_feature_repo
from typer.testing import CliRunner

from e2eai.config import get_settings
from e2eai.tasks.flights.schema import EVENT_TIMESTAMP, FEATURE_SERVICE, FLIGHT_ID, model_features


@pytest.fixture
def cli(flight_window_run, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CLI runner whose settings (from the environment) are the session run's."""
    settings = flight_window_run.settings
    for name, value in {
        "E2EAI_HOME": settings.home,
        "E2EAI_ARTIFACTS__URI": settings.artifacts.uri,
        "E2EAI_FEATURES__REPO": settings.features.repo,
        "E2EAI_DATA__START": settings.data.start,
        "E2EAI_DATA__END": settings.data.end,
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("E2EAI_CONFIG", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()  # later tests read their own environment again


def _run(cli: CliRunner, *args: str) -> dict:
    from e2eai.cli import app

    result = cli.invoke(app, ["features", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_training_set_command_writes_the_point_in_time_rows(
    cli: CliRunner, flight_window_run, tmp_path: Path
) -> None:
    out = tmp_path / "sets" / "jan9.parquet"
    summary = _run(
        cli, "training-set", "--output", str(out), "--start", "2013-01-09", "--end", "2013-01-09"
    )
    written = pd.read_parquet(out)
    training = flight_window_run.training
    day = training[training[EVENT_TIMESTAMP].dt.strftime("%Y-%m-%d") == "2013-01-09"]
    assert summary["rows"] == len(written) == len(day) > 500
    assert summary["columns"] == len(written.columns)
    assert summary["positive_rate"] == round(float(day["delayed"].mean()), 4)
    pd.testing.assert_frame_equal(written, day.reset_index(drop=True))


def test_online_command_serves_the_training_row_of_a_late_flight(
    cli: CliRunner, flight_window_run
) -> None:
    training = flight_window_run.training
    row = training.iloc[-1]  # the last departure of the window: online == offline for it
    from e2eai.tasks.flights.store import entity_frame

    flights = entity_frame(
        flight_window_run.settings,
        flight_window_run.settings.data.end,
        flight_window_run.settings.data.end,
    )
    flight = flights.set_index(FLIGHT_ID).loc[row[FLIGHT_ID]]
    served = _run(
        cli,
        "online",
        "--carrier", flight["carrier"],
        "--flight", str(flight["flight"]),
        "--origin", flight["origin"],
        "--dest", flight["dest"],
        "--tailnum", flight["tailnum"],
        "--departure", flight[EVENT_TIMESTAMP].isoformat(),
        "--distance", str(flight["distance"]),
    )  # fmt: skip
    assert list(served) == [f.name for f in model_features()]
    for feature in model_features():
        expected = row[feature.name]
        if feature.kind == "numeric" and np.isnan(expected):
            assert served[feature.name] is None, feature.name
        elif feature.kind == "numeric":
            assert served[feature.name] == pytest.approx(float(expected), rel=1e-6), feature.name
        else:
            assert served[feature.name] == expected, feature.name


def test_materialize_command_is_idempotent(cli: CliRunner, flight_window_run) -> None:
    summary = _run(cli, "materialize", "--start", "2000-01-01", "--end", "2013-01-10")
    assert summary["online_entities"] == flight_window_run.online_entities
    assert summary["online_entities"]["origin_weather_hourly"] == 3
    assert (
        summary["online_entities"]["plane_attributes"]
        == flight_window_run.feature_rows["plane_attributes"]
    )


def test_commands_without_a_prepared_run_fail_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from e2eai.cli import app

    monkeypatch.setenv("E2EAI_HOME", str(tmp_path))
    monkeypatch.setenv("E2EAI_FEATURES__REPO", str(copy_feature_repo(tmp_path / "repo")))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["features", "build", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: no prepared data under {tmp_path / 'data'}")
    assert "run `e2eai data prepare` first" in result.stderr


@pytest.mark.slow
def test_real_feast_cli_applies_the_repo(flight_window_run, tmp_path: Path) -> None:
    """`feast -c <repo> apply` after the feature step, as the README tells people to do."""
    from feast import FeatureStore

    repo = copy_feature_repo(tmp_path / "feature_repo")
    shutil.copytree(
        flight_window_run.settings.features.repo / "data",
        repo / "data",
        ignore=shutil.ignore_patterns("*.db"),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2EAI_")}
    feast = str(Path(sys.executable).with_name("feast"))
    done = subprocess.run(
        [feast, "-c", str(repo), "apply"], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    store = FeatureStore(repo_path=str(repo))
    assert store.get_feature_service(FEATURE_SERVICE).name == FEATURE_SERVICE
    assert sorted(v.name for v in store.list_feature_views()) == flight_window_run.feature_views
