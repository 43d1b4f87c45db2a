"""Splits by the task's policy: stratified, seeded and nested for tasks without a timestamp."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from synthetic import flight_task, small_training_settings, synthetic_frame

from e2eai.errors import TrainingDataError
from e2eai.training import run_training
from e2eai.training.split import split_frame, stratified_split

UNTIMED = dataclasses.replace(flight_task(), timestamp=None)
"""The flight columns as a task without an event timestamp: split by rows."""


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame(3000, days=75, seed=8)


def _ids(part: pd.DataFrame) -> set[str]:
    return set(part[UNTIMED.row_id])


def test_stratified_split_is_disjoint_complete_and_keeps_the_label_rate(frame):
    split = stratified_split(frame, UNTIMED, holdout_fraction=0.2, validation_fraction=0.15)
    parts = [split.train, split.validation, split.holdout]
    assert sum(len(p) for p in parts) == len(frame)
    ids = [_ids(p) for p in parts]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(split.holdout) == pytest.approx(0.2 * len(frame), abs=2)
    rate = frame[UNTIMED.label].mean()
    for part in parts:
        assert part[UNTIMED.label].mean() == pytest.approx(rate, abs=0.01)
    assert split.policy == "stratified" and not split.time_based
    assert split.window() == {
        "rows": len(split.train),
        "pool_rows": len(split.train),
        "pool_fraction": 1.0,
        "seed": 13,
    }
    assert split.describe()["rows"] == {
        "train": len(split.train),
        "validation": len(split.validation),
        "holdout": len(split.holdout),
    }


def test_same_seed_same_split_whatever_the_row_order(frame):
    a = stratified_split(frame, UNTIMED, 0.2, 0.15, seed=3)
    shuffled = frame.sample(frac=1.0, random_state=0)
    b = stratified_split(shuffled, UNTIMED, 0.2, 0.15, seed=3)
    assert _ids(a.holdout) == _ids(b.holdout) and _ids(a.train) == _ids(b.train)
    other = stratified_split(frame, UNTIMED, 0.2, 0.15, seed=4)
    assert _ids(other.holdout) != _ids(a.holdout)


def test_a_smaller_pool_is_nested_in_a_larger_one_on_the_same_holdout(frame):
    half = stratified_split(frame, UNTIMED, 0.2, 0.15, pool_fraction=0.5)
    full = stratified_split(frame, UNTIMED, 0.2, 0.15, pool_fraction=1.0)
    assert _ids(half.holdout) == _ids(full.holdout)
    assert _ids(half.validation) == _ids(full.validation)
    assert _ids(half.train) < _ids(full.train)
    assert len(half.train) == pytest.approx(len(full.train) / 2, abs=2)
    assert half.window()["pool_rows"] == len(full.train)
    assert half.train[UNTIMED.label].mean() == pytest.approx(
        full.train[UNTIMED.label].mean(), abs=0.01
    )


def test_settings_choose_the_policy(frame, tmp_path):
    settings = small_training_settings(tmp_path, holdout_fraction=0.25, pool_fraction=0.5)
    by_rows = split_frame(frame, UNTIMED, settings.training)
    assert by_rows.policy == "stratified"
    assert by_rows.holdout_window == {"rows": len(by_rows.holdout), "fraction": 0.25, "seed": 13}
    by_time = split_frame(frame, flight_task(), settings.training)
    assert by_time.policy == "time"
    assert by_time.window() == {"start": "2013-01-01", "end": "2013-02-28"}
    assert by_time.holdout_window == {"start": "2013-03-01", "end": "2013-03-14"}


def test_a_part_with_one_class_is_named(frame):
    rare = frame.copy()
    rare[UNTIMED.label] = np.where(np.arange(len(rare)) < 3, 1, 0).astype(np.int8)
    with pytest.raises(TrainingDataError, match=r"validation part .* one class only"):
        stratified_split(rare, UNTIMED, 0.2, 0.1)


def test_untimed_task_trains_on_rows_and_records_the_split(frame, tmp_path):
    settings = small_training_settings(tmp_path, family="hist_gb")
    result = run_training(settings, frame, task=UNTIMED)
    assert result.task == "flights"
    assert result.split["policy"] == "stratified"
    assert result.training_window["seed"] == 13
    assert result.metrics["model"]["rows"] == result.holdout_window["rows"]
    assert result.metrics["model"]["roc_auc"] > 0.6
