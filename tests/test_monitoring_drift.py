"""The drift check's error rates on real flights: false alarms under no drift, and power.

A stationary window: the session's ten real January days, split at random into two halves,
which are i.i.d. by construction. The check may declare drift in at most alpha = 5 % of such
splits, at every window size; Evidently's defaults (measured on the same splits) may not.
Drift injected into one half (warmer weather, another carrier mix) must be found and named.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from e2eai.monitoring.drift import (
    DriftSettings,
    check_drift,
    evidently_default_drift,
    holm_threshold,
    save_drift,
)
from e2eai.tasks import load_task

pytestmark = pytest.mark.slow
SPLITS = 20
ALPHA = DriftSettings().alpha
SIZES = {  # rows of (reference, current) taken from the two halves; None: the whole half
    "half vs half": (None, None),
    "1,000 vs 1,000": (1000, 1000),  # Evidently: per-column p-values at 0.05
    "half vs 300": (None, 300),  # Evidently: distances at 0.1; a small monitoring window
}


@pytest.fixture(scope="module")
def window(flight_window_run) -> tuple[pd.DataFrame, dict[str, str]]:
    task = load_task(flight_window_run.settings)
    return flight_window_run.training, {f.name: f.kind for f in task.features}


def halves(
    rows: pd.DataFrame, seed: int, sizes: tuple[int | None, int | None] = (None, None)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two disjoint random parts of ``rows`` (at most ``sizes`` rows each)."""
    shuffled = rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    half = len(shuffled) // 2
    reference, current = shuffled.iloc[:half], shuffled.iloc[half:].reset_index(drop=True)
    return reference.iloc[: sizes[0]], current.iloc[: sizes[1]]


def test_random_splits_of_one_window_raise_at_most_alpha_false_alarms(
    window, record_property
) -> None:
    rows, kinds = window
    rates, pvalues = {}, []
    for label, sizes in SIZES.items():
        calibrated = default = 0
        for seed in range(SPLITS):
            reference, current = halves(rows, seed, sizes)
            result = check_drift(reference, current, kinds)
            calibrated += result.drift_detected
            default += any(f.drifted for f in evidently_default_drift(reference, current, kinds))
            pvalues += [f.score for f in result.features]
        rates[label] = {"calibrated": calibrated / SPLITS, "evidently_default": default / SPLITS}
    record_property("false_alarm_rates", rates)
    print("false-alarm rates over", SPLITS, "splits:", rates)
    for label, rate in rates.items():
        assert rate["calibrated"] <= ALPHA, (label, rates)
    # Evidently's defaults flag some column in most small windows with no drift at all.
    assert rates["1,000 vs 1,000"]["evidently_default"] >= 0.5, rates
    assert rates["half vs 300"]["evidently_default"] >= 0.5, rates
    # The tests are live: per input, p < 0.05 about as often as 5 % (less where values tie).
    below = float(np.mean(np.array(pvalues) < 0.05))
    assert 0.005 < below < 0.1, below


def test_the_default_baseline_is_what_evidentlys_preset_decides(window) -> None:
    rows, kinds = window
    reference, current = halves(rows, 0, SIZES["1,000 vs 1,000"])
    baseline = evidently_default_drift(reference, current, kinds)
    definition = DataDefinition(
        numerical_columns=[n for n, k in kinds.items() if k == "numeric"],
        categorical_columns=[n for n, k in kinds.items() if k == "categorical"],
    )
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current[list(kinds)], data_definition=definition),
        reference_data=Dataset.from_pandas(
            reference[list(kinds)].reset_index(drop=True), data_definition=definition
        ),
    )
    metrics = snapshot.dict()["metrics"]
    count = next(m for m in metrics if m["metric_name"].startswith("DriftedColumnsCount"))
    scores = {
        m["config"]["column"]: m["value"]
        for m in metrics
        if m["metric_name"].startswith("ValueDrift")
    }
    assert count["value"]["count"] == sum(f.drifted for f in baseline) > 0
    assert scores == pytest.approx({f.name: f.score for f in baseline})


def test_warmer_weather_is_found_and_named(window) -> None:
    rows, kinds = window
    reference, current = halves(rows, 101)
    for warmer in (10.0, 2.0):  # °F; the window's temperatures spread ~6.4 °F
        result = check_drift(reference, current.assign(temp=current["temp"] + warmer), kinds)
        assert result.drifted == ["temp"], warmer  # only what was changed
        assert result.drift_detected and result.share == pytest.approx(1 / len(kinds))
    small = current.iloc[:300]
    assert check_drift(reference, small.assign(temp=small["temp"] + 5.0), kinds).drifted == ["temp"]


def test_another_carrier_mix_is_found(window) -> None:
    rows, kinds = window
    reference, current = halves(rows, 102)
    top = current["carrier"].value_counts().index[0]
    weights = np.where(current["carrier"] == top, 4.0, 1.0)
    mixed = current.sample(len(current), replace=True, weights=weights, random_state=3)
    result = check_drift(reference, mixed.reset_index(drop=True), kinds)
    assert result.drift_detected
    # The carrier, and with it what comes with a carrier (its planes, its routes' stats).
    assert "carrier" in result.drifted and "temp" not in result.drifted


def test_a_significant_but_tiny_shift_in_a_large_window_is_not_drift(window) -> None:
    rows, kinds = window
    half, _ = halves(rows, 105)
    # Two 20,000-row samples of one distribution (draws with replacement from one half).
    reference = half.sample(20_000, replace=True, random_state=1).reset_index(drop=True)
    current = half.sample(20_000, replace=True, random_state=2).reset_index(drop=True)
    current["temp"] += 0.5  # °F: under a tenth of a standard deviation
    result = check_drift(reference, current, kinds)
    temp = next(f for f in result.features if f.name == "temp")
    assert temp.score <= temp.threshold  # significant at this size
    assert temp.distance < temp.min_distance and result.drifted == []
    floorless = DriftSettings(min_numeric_distance=0.0, min_categorical_distance=0.0)
    assert check_drift(reference, current, kinds, settings=floorless).drifted == ["temp"]


def test_the_share_weighs_inputs_by_importance(window) -> None:
    rows, kinds = window
    reference, current = halves(rows, 103)
    warm = current.assign(temp=current["temp"] + 8.0)
    others = len(kinds) - 1
    heavy = check_drift(reference, warm, kinds, {n: (10.0 if n == "temp" else 1.0) for n in kinds})
    light = check_drift(reference, warm, kinds, {n: (0.1 if n == "temp" else 1.0) for n in kinds})
    unused = check_drift(reference, warm, kinds, {n: (0.0 if n == "temp" else 1.0) for n in kinds})
    assert heavy.drifted == light.drifted == unused.drifted == ["temp"]
    assert heavy.share == pytest.approx(10 / (10 + others))
    assert light.share == pytest.approx(0.1 / (0.1 + others))
    assert unused.share == 0 and not unused.drift_detected  # an input the model ignores
    policy = DriftSettings(alarm_share=0.1)
    assert check_drift(
        reference, warm, kinds, {n: (10.0 if n == "temp" else 1.0) for n in kinds}, settings=policy
    ).drift_detected
    assert not check_drift(
        reference, warm, kinds, {n: (0.1 if n == "temp" else 1.0) for n in kinds}, settings=policy
    ).drift_detected


def test_holm_rejects_step_down_at_one_common_threshold() -> None:
    assert holm_threshold([0.5, 0.04, 0.001, 0.01], 0.05) == pytest.approx(0.05 / 2)
    assert holm_threshold([0.5, 0.2, 0.03], 0.05) == pytest.approx(0.05 / 3)  # Bonferroni
    assert holm_threshold([0.001, 0.002], 0.05) == pytest.approx(0.05)


def test_bad_inputs_are_named(window) -> None:
    rows, kinds = window
    with pytest.raises(ValueError, match=r"current rows lack the model input.*temp"):
        check_drift(rows, rows.drop(columns=["temp"]), kinds)
    with pytest.raises(ValueError, match=r"reference rows lack the model input.*carrier"):
        check_drift(rows.drop(columns=["carrier"]), rows, kinds)
    with pytest.raises(ValueError, match="no value of the numeric input 'wind_gust'"):
        check_drift(rows, rows.assign(wind_gust=np.nan), kinds)
    with pytest.raises(ValueError, match=r"unknown kind.*temp"):
        check_drift(rows, rows, {**kinds, "temp": "ordinal"})
    with pytest.raises(ValueError, match=r"no drift weight for the input.*dest"):
        check_drift(rows, rows, kinds, {n: 1.0 for n in kinds if n != "dest"})


def test_reports_are_written_with_every_inputs_evidence(window, tmp_path) -> None:
    rows, kinds = window
    reference, current = halves(rows, 104)
    result = check_drift(
        reference,
        current.assign(temp=current["temp"] + 10.0),
        kinds,
        settings=DriftSettings(max_rows=1000),
    )
    assert result.rows_reference == result.rows_current == 1000  # sampled
    save_drift(result, tmp_path / "drift.html", tmp_path / "drift.json")
    assert (tmp_path / "drift.html").stat().st_size > 100_000  # Evidently's page, with plots
    metrics = json.loads((tmp_path / "drift.json").read_text())["metrics"]
    written = {(m["config"]["column"], m["config"]["method"]): m["value"] for m in metrics}
    expected = {(f.name, f.method): f.score for f in result.features}
    flagged = [f for f in result.features if f.score <= f.threshold]  # where the floor decides
    expected |= {(f.name, f.distance_method): f.distance for f in flagged}
    assert ("temp", "wasserstein") in expected
    assert written == pytest.approx(expected)  # the JSON holds exactly the check's figures
    assert json.dumps(result.summary())  # JSON-ready
