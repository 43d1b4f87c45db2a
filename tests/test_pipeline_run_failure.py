"""A local run whose step fails: exit code 1, and the JSON names the failed task."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from e2eai.cli import app


def test_a_failing_step_fails_the_run_and_stops_it(tmp_path):
    overrides = json.dumps({"home": str(tmp_path), "registry": {
        "database_url": f"sqlite:///{tmp_path / 'registry.db'}"}})  # fmt: skip
    # The holdout after a December training window lies outside the 2013 data window.
    result = CliRunner().invoke(
        app,
        ["pipeline", "run", "--json", "--settings-json", overrides,
         "--train-start", "2013-01-01", "--train-end", "2013-12-31"],
    )  # fmt: skip
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed"
    assert "configure-run" in summary["error"]
    assert summary["model_version"] is None and summary["gates_passed"] is None
    # Nothing after the failed step ran.
    assert list(summary["task_seconds"]) in ([], ["configure-run"])
    assert "must lie inside the data window" in result.stderr
