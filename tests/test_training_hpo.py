"""Hyper-parameter search: one space as data, Optuna trials, a results table, Katib form."""

from __future__ import annotations

from datetime import date

import pandas as pd
from synthetic import flight_task, small_training_settings, synthetic_frame

from e2eai.training.families import family
from e2eai.training.family import FitRequest
from e2eai.training.search_space import SEARCH_SPACE, katib_parameters
from e2eai.training.split import time_split
from e2eai.training.tabular_spec import MLPParams


def test_search_space_covers_the_issue_parameters():
    names = {spec.name for spec in SEARCH_SPACE}
    issue = {"learning_rate", "hidden_width", "depth", "dropout", "optimizer", "batch_size"}
    assert issue <= names
    optimizer = next(s for s in SEARCH_SPACE if s.name == "optimizer")
    assert set(optimizer.choices) == {"sgd", "adam", "rmsprop"}
    # Every name is an MLP hyper-parameter the trainer understands.
    assert names <= set(MLPParams.__dataclass_fields__)


def test_katib_rendering_follows_the_space():
    rendered = {p["name"]: p for p in katib_parameters()}
    assert rendered["learning_rate"]["parameterType"] == "double"
    assert rendered["learning_rate"]["feasibleSpace"]["distribution"] == "logUniform"
    assert rendered["depth"]["parameterType"] == "int"
    assert rendered["optimizer"]["feasibleSpace"]["list"] == ["adam", "sgd", "rmsprop"]


def test_optuna_search_writes_trials_table_and_best_params(tmp_path):
    frame = synthetic_frame(1500, days=40, seed=6)
    task = flight_task()
    split = time_split(frame, task, date(2013, 1, 1), date(2013, 2, 9), 8, 0, require_holdout=False)
    settings = small_training_settings(tmp_path, epochs=2)
    mlp = family("torch_mlp")
    assert mlp.search_space == SEARCH_SPACE
    request = FitRequest(task, split.train, split.validation, settings.training, tmp_path)
    result = mlp.search(request, tmp_path / "hpo", n_trials=4, timeout_seconds=None)

    table = pd.read_csv(result.trials_csv)
    assert len(table) == result.trials == 4
    assert {f"params_{s.name}" for s in SEARCH_SPACE} <= set(table.columns)
    assert result.best_validation_auc == table["value"].max()
    assert set(result.best_params) == {s.name for s in SEARCH_SPACE}
    lr = result.best_params["learning_rate"]
    assert 1e-4 <= lr <= 3e-2
