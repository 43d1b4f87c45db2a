"""The closed loop on a short real replay: three weeks of 2013 through the app.

Real engines throughout: the champion trained and exported by the library, KServe
ModelServer predictors behind the router enriching from their own Feast online store
(filled hour by hour as the replay clock passes), ``e2eai app`` over HTTP with its SQLite
database, the Evidently monitoring pass, the retraining policy, a warm-started retrain, the
canary analysis, and the scheduled baseline's retrain at the turn of the month.

The policy is made sensitive to drift (``drift_share`` 0.1, drift counted even with labels)
so that the real shift from January to February forces a retrain in a short replay.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_feature_repo

from e2eai.config import Settings
from e2eai.lifecycle.closed_loop import ReplayRecord, run_replay
from e2eai.lifecycle.scenario import train_in_process
from e2eai.serving.processes import free_port

pytestmark = pytest.mark.slow

REPLAY = (date(2013, 1, 25), date(2013, 2, 13))


def _settings(home: Path) -> Settings:
    return Settings(
        home=home,
        data={"start": date(2013, 1, 1), "end": REPLAY[1]},
        features={"repo": copy_feature_repo(home / "feature_repo")},
        training={
            "family": "torch_mlp",
            "train_start": date(2013, 1, 1),
            "validation_days": 4,
            "holdout_days": 5,
            "workers": 1,
            "epochs": 2,
        },
        # The loop's mechanics are under test here, not model quality: every model passes.
        gates={"baseline_margin": -1.0, "champion_tolerance": 1.0},
        # fp32: a batch's int8 activations are scaled per batch, which moves p by ~1e-3
        export={"quantize": False},
        serving={
            "port": free_port(),
            "canary_min_requests": 100,
            "canary_min_labelled": 100,
            "canary_auc_noninferiority_margin": 0.2,
        },
        monitoring={"min_rows": 200, "min_labelled": 200},
        retraining={
            "drift_share": 0.1,
            "drift_without_labels_only": False,
            "min_labelled": 200,
            "cooldown_days": 30,
            "training_days": 20,
        },
        replay={
            "start": REPLAY[0],
            "end": REPLAY[1],
            "label_wait_hours": 12,
            "canary_every_hours": 1,
            # small requests: a 10 % canary gets enough of them in two weeks to be decided
            # (with 16 flights a request it gets ~90, below canary_min_requests)
            "batch_rows": 4,
        },
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, ReplayRecord, dict]:
    home = tmp_path_factory.mktemp("replay") / "home"
    settings = _settings(home)
    record = run_replay(settings, train_in_process, progress=lambda _: None)
    summary = json.loads((record.run_dir / "summary.json").read_text())
    return settings, record, summary


def test_the_replay_reports_every_week_against_both_baselines(replayed) -> None:
    settings, record, summary = replayed
    weekly = summary["weekly"]
    assert [w["week_start"] for w in weekly] == ["2013-01-21", "2013-01-28", "2013-02-04",
                                                  "2013-02-11"]  # fmt: skip
    flights = pd.read_parquet(settings.features.repo / "data" / "flights.parquet")
    ts = flights["event_timestamp"]
    replayed_flights = int(((ts >= "2013-01-25") & (ts < "2013-02-14")).sum())
    assert summary["predictions"] == sum(w["rows"] for w in weekly) == replayed_flights
    # Every flight of the replay landed before its end: every outcome came back.
    assert summary["feedback"] == replayed_flights
    assert sum(w["labelled"] for w in weekly) == replayed_flights
    for week in weekly:
        for model in ("closed_loop", "static", "scheduled"):
            assert 0.5 < week[f"auc_{model}"] < 1.0
    # Until the first retrain the closed loop serves the static champion: same answers.
    assert weekly[0]["auc_closed_loop"] == pytest.approx(weekly[0]["auc_static"], abs=1e-3)
    # The scheduled baseline retrained on February 1 and serves from then on.
    (scheduled,) = summary["scheduled"]
    assert scheduled["at"].startswith("2013-02-01") and scheduled["passed"]
    assert weekly[-1]["auc_scheduled"] != weekly[-1]["auc_static"]
    assert set(summary) >= {"weekly", "retrains", "canary_decisions", "report", "seconds",
                            "peak_rss_mb"}  # fmt: skip
    report = Path(summary["report"]).read_text()
    assert "Quality: closed loop vs static vs scheduled" in report
    assert report.count("data:image/png;base64,") >= 3
    # Every window's report is linked relative to the run's folder, and the link resolves.
    links = re.findall(r'<a href="([^"]+)">window report</a>', report)
    assert links and all((record.run_dir / link).is_file() for link in links), links


def test_monitoring_wrote_a_report_per_complete_window(replayed) -> None:
    _, record, summary = replayed
    reports = Path(summary["monitoring_reports"])
    windows = [w["window"] for w in record.windows]
    assert windows == ["2013-01-21_2013-01-28", "2013-01-28_2013-02-04", "2013-02-04_2013-02-11"]
    for name in windows:
        assert (reports / f"{name}.html").is_file() and (reports / f"{name}.json").is_file()
        assert (reports / f"{name}-drift.html").stat().st_size > 10_000  # Evidently's own
    checked = [w for w in record.windows if w["drift"]]
    assert checked and all(w["quality"]["roc_auc"] is not None for w in checked)


def test_the_forced_drift_retrains_gates_and_the_canary_is_decided(replayed) -> None:
    _, _, summary = replayed
    retrains = summary["retrains"]
    assert retrains, summary["decisions"]
    first = retrains[0]
    assert first["version"] is not None
    trigger = next(d for d in summary["decisions"] if d["retrain"])
    assert trigger["reason"] == first["reason"]
    # The January → February drift is real, and the sensitive policy reads it.
    assert trigger["evidence"]["drift"]["fired"], trigger["evidence"]["drift"]
    # The sliding window ends before the trigger: the last day whose flights all landed.
    assert first["training_window"][1] < first["at"][:10]
    # The live canary, then the cooldown (30 days), hold every later window back.
    later = [d for d in summary["decisions"] if d["at"] > first["at"]]
    assert later and all(not d["retrain"] for d in later)
    assert all(d["blocked"] in ("in_progress", "cooldown") for d in later if d["reason"])
    # The canary was analysed every hour on fed-back labels and decided (or stepped).
    assert summary["canary_decisions"], f"{summary['canary_analyses']} analyses held"
    assert summary["canary_decisions"][0]["canary_version"] == str(first["version"])
    final = summary["canary_decisions"][-1]["action"]
    if final in ("promote", "rollback"):
        assert first["outcome"] == {"promote": "promoted", "rollback": "rolled back"}[final]
    assert any(w["canary_rows"] > 0 for w in summary["weekly"])


def test_the_audit_trail_holds_every_decision(replayed) -> None:
    _, record, summary = replayed
    db = record.run_dir / "app.db"
    with sqlite3.connect(db) as connection:
        rows = connection.execute("select action, outcome, detail from audit").fetchall()
    decisions = [r for r in rows if r[0] == "retrain-decision"]
    assert len(decisions) == len(summary["decisions"]) == len(record.windows)
    assert {r[1] for r in decisions} >= {"retrain"}
    evidence = json.loads(decisions[0][2])["evidence"]
    assert {"performance", "label_shift", "drift", "age", "guard"} <= set(evidence)
    retrains = [r for r in rows if r[0] == "retrain"]
    assert len(retrains) == len(summary["retrains"])


def test_served_probabilities_equal_the_model_on_offline_point_in_time_rows(replayed) -> None:
    """What the app logged (served with online features as of the replay clock) equals the
    served model scored on Feast's offline point-in-time training rows, flight by flight."""
    from e2eai.export.quantize import session
    from e2eai.export.signature import onnx_proba
    from e2eai.registry import ModelRegistry
    from e2eai.tasks import load_task

    settings, record, summary = replayed
    task = load_task(settings)
    with sqlite3.connect(record.run_dir / "app.db") as connection:
        logged = connection.execute(
            "select request, probability from predictions where model_version = ? "
            "order by event_time limit 2000",
            (str(summary["champion"]),),
        ).fetchall()
    requests = pd.DataFrame([json.loads(r[0]) for r in logged])
    requests["served"] = [r[1] for r in logged]
    requests["event_timestamp"] = pd.to_datetime(requests["scheduled_departure"], utc=True)
    offline = task.training_set(settings, REPLAY[0], REPLAY[0])
    keys = ["carrier", "origin", "dest", "tailnum", "event_timestamp"]
    joined = requests.merge(offline, on=keys, how="inner", suffixes=("_request", ""))
    assert len(joined) >= 200
    with ModelRegistry.from_settings(settings) as registry:
        onnx = registry.fetch_artifact(summary["champion"], "model.onnx", record.run_dir / "p")
    offline_p = onnx_proba(session(onnx), joined, task)
    assert np.max(np.abs(offline_p - joined["served"].to_numpy())) <= 1e-5
