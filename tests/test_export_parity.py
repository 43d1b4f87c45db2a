"""The ONNX parity gate on its own: every row counts, NaN fails, the tolerance is the bound."""

from __future__ import annotations

import numpy as np
import pytest

from e2eai.errors import ExportParityError
from e2eai.export.parity import check_parity

ATOL = 1e-5
ROWS = 500


@pytest.fixture
def framework() -> np.ndarray:
    return np.random.default_rng(3).uniform(size=ROWS).astype(np.float32)


def test_identical_probabilities_pass(framework):
    report = check_parity("xgboost", framework, framework.copy(), ATOL)
    assert report.max_abs_diff == 0.0 and report.rows == ROWS and report.atol == ATOL


def test_differences_within_atol_pass_and_are_reported(framework):
    onnx_values = framework.astype(np.float64) + np.linspace(-0.9, 0.9, ROWS) * ATOL
    report = check_parity("xgboost", framework, onnx_values, ATOL)
    assert 0.0 < report.max_abs_diff <= ATOL
    assert report.max_abs_diff == pytest.approx(0.9 * ATOL, rel=1e-3)


def test_a_difference_only_in_the_last_row_fails(framework):
    onnx_values = framework.copy()
    onnx_values[-1] += 10 * ATOL
    with pytest.raises(ExportParityError) as info:
        check_parity("xgboost", framework, onnx_values, ATOL)
    assert info.value.rows == ROWS
    assert info.value.max_abs_diff == pytest.approx(10 * ATOL, rel=1e-2)


@pytest.mark.parametrize("row", [0, ROWS // 2, ROWS - 1])
def test_a_nan_in_the_onnx_output_fails(framework, row):
    onnx_values = framework.copy()
    onnx_values[row] = np.nan
    with pytest.raises(ExportParityError) as info:
        check_parity("mlp", framework, onnx_values, ATOL)
    assert info.value.max_abs_diff == float("inf")


def test_a_nan_in_the_framework_output_fails(framework):
    broken = framework.copy()
    broken[7] = np.nan
    with pytest.raises(ExportParityError):
        check_parity("mlp", broken, framework, ATOL)


def test_a_different_number_of_rows_fails(framework):
    with pytest.raises(ExportParityError) as info:
        check_parity("mlp", framework, framework[:-1], ATOL)
    assert info.value.max_abs_diff == float("inf")


def test_shapes_n_and_n_by_1_compare_row_by_row(framework):
    report = check_parity("mlp", framework.reshape(-1, 1), framework, ATOL)
    assert report.rows == ROWS and report.max_abs_diff == 0.0
