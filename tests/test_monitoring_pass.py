"""A monitoring pass over a real prediction log: windows, reports, state, the app's listing.

The log is built the way the app writes it: real model inputs (the session's ten real
January days), scored by a registered Wide & Deep version's ONNX graph, labelled with the
real outcomes, with event times spread over three weekly windows (the last incomplete).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from app_fixtures import explaining_model
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score
from store_fixtures import store_labelled

from e2eai.app.api import create_app
from e2eai.app.store import AppStore
from e2eai.config import Settings
from e2eai.export.signature import onnx_feed
from e2eai.monitoring.monitor import (
    monitor,
    read_state,
    reports_dir,
    track_risk,
    window_summaries,
)
from e2eai.registry import ModelRegistry
from e2eai.serving.processes import settings_env
from e2eai.tasks import load_task

pytestmark = pytest.mark.slow
MONDAY = datetime(2013, 1, 14, tzinfo=UTC)  # a window start (anchor 2013-01-07 + 7 days)
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def world(flight_window_run, tmp_path_factory):
    """(settings, task, store, version, rows): a registry version and a migrated app store."""
    home = tmp_path_factory.mktemp("monitoring")
    base = flight_window_run.settings.model_dump(exclude={"home", "artifacts", "registry"})
    settings = Settings.model_validate({**base, "home": home})
    task = load_task(settings)
    onnx = explaining_model(flight_window_run)
    # Reference and traffic from one random split of the same days: no drift between them
    # but what the test puts there.
    rows = flight_window_run.training.sample(frac=1.0, random_state=5).reset_index(drop=True)
    reference, holdout = home / "reference.parquet", home / "holdout.parquet"
    rows.iloc[: len(rows) // 2].to_parquet(reference, index=False)
    rows.iloc[: len(rows) // 2].to_parquet(holdout, index=False)  # its source risk's rows
    with ModelRegistry.from_settings(settings) as registry:
        version = registry.register(
            name="flight-delay",
            family="torch_mlp",
            artifacts={
                "model.onnx": onnx,
                "reference.parquet": reference,
                "holdout.parquet": holdout,
            },
            metrics={"roc_auc": 0.71},
            params={},
            lineage={"feature_service": "flight_delay_v1"},
            stage="champion",
        ).version
    store = AppStore.from_settings(settings)
    store.migrate()
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    rows["__p"] = session.run(["probability"], onnx_feed(rows, task))[0].reshape(-1)
    yield settings, task, store, version, rows
    store.close()


def log(store, task, version, frame: pd.DataFrame, start: datetime, days: float) -> None:
    """Store ``frame``'s rows as predictions spread over ``days`` from ``start``, labelled."""
    names = [f.name for f in task.features]
    answers = [
        {
            "probability": float(row["__p"]),
            "features": {
                n: (None if isinstance(row[n], float) and np.isnan(row[n]) else row[n])
                for n in names
            },
        }
        for row in frame.to_dict(orient="records")
    ]
    store_labelled(
        store,
        task,
        version,
        answers,
        frame[task.label],
        start,
        timedelta(days=days),
        "flight-delay",
    )


def test_a_pass_reports_each_complete_window_once(world) -> None:
    settings, task, store, version, rows = world
    half = len(rows) // 2
    log(store, task, version, rows.iloc[half:], MONDAY, 7)  # window 1: like the reference
    shifted = rows.iloc[half:].copy()
    shifted["temp"] = shifted["temp"] + 20.0  # window 2: a heat wave
    log(store, task, version, shifted, MONDAY + timedelta(days=7), 7)
    log(store, task, version, rows.iloc[:50], MONDAY + timedelta(days=14), 1)  # incomplete

    first = monitor(settings, store)

    assert [w["window"] for w in first.windows] == [
        "2013-01-14_2013-01-21",
        "2013-01-21_2013-01-28",
    ]
    calm, hot = first.windows
    expected = rows.iloc[half:]
    assert calm["rows"] == calm["labelled"] == len(expected)
    auc = roc_auc_score(expected[task.label], expected["__p"])
    assert calm["quality"]["roc_auc"] == pytest.approx(auc, abs=1e-9)
    assert calm["quality"]["roc_auc_low"] < auc < calm["quality"]["roc_auc_high"]
    assert calm["holdout_roc_auc"] == 0.71 and calm["reference_version"] == version
    drifted = {f["name"] for f in hot["drift"]["features"] if f["drifted"]}
    assert "temp" in drifted
    assert calm["drift"]["drifted"] == []  # the same days, split at random
    assert hot["drift"]["share"] > calm["drift"]["share"] == 0
    for w in first.windows:
        folder = reports_dir(settings)
        page = (folder / w["report"]).read_text()
        assert w["window"][:10] in page and "ROC-AUC" in page
        assert (folder / w["drift_report"]).stat().st_size > 10_000  # Evidently's page
        assert json.loads((folder / f"{w['window']}.json").read_text())["rows"] == w["rows"]
    assert read_state(settings) == MONDAY + timedelta(days=14)
    # The risk since deployment, over both windows' rows in turn: the heat wave moved the
    # inputs, not the loss (the logged probabilities are the calm ones), so no alarm.
    losses = (expected["__p"] - expected[task.label]) ** 2
    assert calm["risk"]["n"] == len(expected) and hot["risk"]["n"] == 2 * len(expected)
    assert hot["risk"]["mean"] == pytest.approx(losses.mean(), abs=1e-12)
    assert calm["risk"]["source_n"] == half and calm["risk"]["version"] == version
    assert calm["risk"]["lower"] <= hot["risk"]["lower"] < losses.mean()
    assert not hot["risk"]["alarm"] and hot["risk"]["first_alarm_row"] is None
    assert (calm["risk"]["windows"], hot["risk"]["windows"]) == (1, 2)

    assert monitor(settings, store).windows == []  # nothing new is complete

    log(store, task, version, rows.iloc[:300], MONDAY + timedelta(days=21), 1)
    later = monitor(settings, store)
    assert [w["window"] for w in later.windows] == ["2013-01-28_2013-02-04"]
    assert later.windows[0]["rows"] == 50  # the rows logged in that window, no more
    assert later.windows[0]["drift"] is None  # fewer than monitoring.min_rows
    assert later.windows[0]["risk"]["n"] == 2 * len(expected) + 50  # read at any size
    # A window reported again (a pass stopped between its line and its state) is not read
    # twice by the risk tracker.
    again = track_risk(settings, task, calm["window"], store.prediction_log(MONDAY, MONDAY + WEEK))
    assert again[version]["n"] == later.windows[0]["risk"]["n"]
    assert [w["window"] for w in window_summaries(settings)] == [
        "2013-01-14_2013-01-21",
        "2013-01-21_2013-01-28",
        "2013-01-28_2013-02-04",
    ]


def test_the_app_lists_the_windows_newest_first(world) -> None:
    settings, _task, store, _version, _rows = world
    if not window_summaries(settings):
        pytest.skip("needs the pass above")
    with TestClient(create_app(settings, store=store)) as client:
        reports = client.get("/api/monitoring/reports").json()["reports"]
        assert [r["window"] for r in reports][:2] == [
            "2013-01-28_2013-02-04",
            "2013-01-21_2013-01-28",
        ]
        hot = reports[1]
        assert hot["drift_share"] > 0 and any(f["drifted"] for f in hot["features"])
        assert client.get(hot["url"]).status_code == 200
        assert client.get(hot["drift_url"]).status_code == 200


def test_the_cli_pass_prints_json(world, tmp_path: Path) -> None:
    settings, *_ = world
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "e2eai"), "monitor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["windows"] == [] and answer["retraining"] == []  # all reported already
    assert answer["logged"][0].startswith("2013-01-14")


def test_an_input_with_no_value_in_the_window_is_reported_not_a_crash(world) -> None:
    """A feed that stopped (every ``temp`` missing for a week) cannot be tested for drift:
    the pass reports the input as unmeasured and tests the others."""
    settings, task, store, version, rows = world
    start = datetime(2013, 2, 11, tzinfo=UTC)  # after every window logged above
    silent = rows.iloc[len(rows) // 2 :].copy()
    silent["temp"] = np.nan
    log(store, task, version, silent, start, 7)
    log(store, task, version, rows.iloc[:10], start + WEEK, 1)  # closes the week
    week = monitor(settings, store).windows[-1]
    assert week["window"] == "2013-02-11_2013-02-18"
    assert week["unmeasured_inputs"] == [
        {"name": "temp", "reference_present": pytest.approx(1.0, abs=0.05), "current_present": 0.0}
    ]
    tested = {f["name"] for f in week["drift"]["features"]}
    assert "temp" not in tested and len(tested) == len(task.features) - 1
    page = (reports_dir(settings) / f"{week['window']}.html").read_text()
    assert "Not tested, no value on one side:" in page and "temp (present in" in page
