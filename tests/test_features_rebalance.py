"""Class rebalancing of training rows: exact class counts, rows drawn from the input."""

from __future__ import annotations

import pandas as pd
import pytest

from e2eai.features.rebalance import rebalance
from e2eai.tasks.flights.schema import EVENT_TIMESTAMP, FLIGHT_ID, LABEL


def _frame(delayed: int, on_time: int) -> pd.DataFrame:
    n = delayed + on_time
    return pd.DataFrame(
        {
            FLIGHT_ID: [f"f{i:04d}" for i in range(n)],
            EVENT_TIMESTAMP: pd.date_range("2013-01-01", periods=n, freq="min", tz="UTC"),
            "distance": range(n),
            LABEL: [1] * delayed + [0] * on_time,
        }
    ).sample(frac=1.0, random_state=1)  # shuffled: the result must be time-ordered again


def test_none_is_the_identity() -> None:
    frame = _frame(20, 80)
    assert rebalance(frame, "none", seed=1, label=LABEL) is frame


def test_undersampling_keeps_every_minority_row_and_as_many_majority_rows() -> None:
    frame = _frame(20, 80)
    out = rebalance(frame, "undersample", seed=1, label=LABEL)
    assert out[LABEL].value_counts().to_dict() == {1: 20, 0: 20}
    assert set(out[out[LABEL] == 1][FLIGHT_ID]) == set(frame[frame[LABEL] == 1][FLIGHT_ID])
    assert out[FLIGHT_ID].is_unique and set(out[FLIGHT_ID]) <= set(frame[FLIGHT_ID])
    assert out[EVENT_TIMESTAMP].is_monotonic_increasing


def test_oversampling_repeats_minority_rows_up_to_the_majority() -> None:
    frame = _frame(20, 80)
    out = rebalance(frame, "oversample", seed=1, label=LABEL)
    assert out[LABEL].value_counts().to_dict() == {1: 80, 0: 80}
    minority = out[out[LABEL] == 1]
    assert set(minority[FLIGHT_ID]) == set(frame[frame[LABEL] == 1][FLIGHT_ID])
    assert minority[FLIGHT_ID].duplicated().sum() == 60
    assert out[EVENT_TIMESTAMP].is_monotonic_increasing


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    frame = _frame(20, 80)
    first = rebalance(frame, "undersample", seed=7, label=LABEL)[FLIGHT_ID].tolist()
    assert rebalance(frame, "undersample", seed=7, label=LABEL)[FLIGHT_ID].tolist() == first
    assert rebalance(frame, "undersample", seed=8, label=LABEL)[FLIGHT_ID].tolist() != first


def test_a_single_class_cannot_be_rebalanced() -> None:
    with pytest.raises(ValueError, match="only class"):
        rebalance(_frame(0, 10), "undersample", seed=1, label=LABEL)
