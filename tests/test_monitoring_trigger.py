"""``e2eai monitor``'s retraining trigger: the policy on each new window of a real prediction
log, and a run of the training pipeline submitted to a Kubeflow Pipelines endpoint (a real
HTTP server speaking its REST API, ``tests/kfp_api.py``) when the policy calls for one; every
decision and submission audited; the cooldown counted from the last submission.

Real rows: ten January days scored by a real Wide & Deep model through the registry. Week 1
is the model's own population (no retrain); week 2 has its labels flipped, which the risk
and performance rules see; week 3 is flipped too, but within the cooldown.
"""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime, timedelta

import onnxruntime as ort
import pytest
from app_fixtures import explaining_model
from sklearn.metrics import roc_auc_score
from test_monitoring_pass import log

from e2eai.app.store import AppStore
from e2eai.config import Settings
from e2eai.export.signature import onnx_feed
from e2eai.monitoring.monitor import monitor
from e2eai.monitoring.trigger import (
    SUBMITTED,
    kfp_submitter,
    retraining_arguments,
    trigger_retraining,
)
from e2eai.registry import ModelRegistry
from e2eai.tasks import load_task

pytestmark = pytest.mark.slow
MONDAY = datetime(2013, 1, 14, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture
def world(flight_window_run, tmp_path):
    """(settings, task, store, version, rows): a champion with its training window."""
    base = flight_window_run.settings.model_dump(exclude={"home", "artifacts", "registry"})
    # Each test its own app database and monitoring state (the session's point elsewhere).
    base["app"]["database_url"] = f"sqlite:///{tmp_path / 'app.db'}"
    base["monitoring"]["directory"] = None
    settings = Settings.model_validate({**base, "home": tmp_path})
    task = load_task(settings)
    onnx = explaining_model(flight_window_run)
    rows = flight_window_run.training.sample(frac=1.0, random_state=7).reset_index(drop=True)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    rows["__p"] = session.run(["probability"], onnx_feed(rows, task))[0].reshape(-1)
    half = len(rows) // 2
    reference, holdout = tmp_path / "reference.parquet", tmp_path / "holdout.parquet"
    rows.iloc[:half].drop(columns="__p").to_parquet(reference, index=False)
    rows.iloc[:half].drop(columns="__p").to_parquet(holdout, index=False)
    auc = roc_auc_score(rows.iloc[:half][task.label], rows.iloc[:half]["__p"])
    with ModelRegistry.from_settings(settings) as registry:
        version = registry.register(
            name=settings.serving.model_name,
            family="torch_mlp",
            artifacts={
                "model.onnx": onnx,
                "reference.parquet": reference,
                "holdout.parquet": holdout,
            },
            metrics={"roc_auc": float(auc)},
            params={},
            lineage={
                "feature_service": "flight_delay_v1",
                "training_window": {"start": date(2013, 1, 1), "end": date(2013, 1, 8)},
            },
            stage="champion",
        ).version
    store = AppStore.from_settings(settings)
    store.migrate()
    yield settings, task, store, version, rows.iloc[half:]
    store.close()


def flipped(frame, task):
    out = frame.copy()
    out[task.label] = 1 - out[task.label]
    return out


def test_a_harmful_window_submits_one_retraining_run_and_the_cooldown_holds_the_next(
    world, kfp_api
) -> None:
    settings, task, store, version, rows = world
    host, requests = kfp_api
    log(store, task, version, rows, MONDAY, 7)
    log(store, task, version, flipped(rows, task), MONDAY + WEEK, 7)
    log(store, task, version, flipped(rows, task), MONDAY + 2 * WEEK, 7)
    log(store, task, version, rows.iloc[:10], MONDAY + 3 * WEEK, 1)  # closes week 3
    windows = monitor(settings, store).windows
    assert len(windows) == 3

    triggered = trigger_retraining(settings, store, task, windows, kfp_submitter(settings, host))

    calm, harmful, cooled = triggered
    assert not calm.decision["retrain"] and calm.submitted is None and calm.error is None
    assert harmful.decision["retrain"] and harmful.decision["reason"] in ("risk", "performance")
    assert harmful.decision["evidence"]["risk"]["fired"]
    assert cooled.decision["blocked"] == "cooldown" and cooled.submitted is None
    # One run, of the training pipeline, fine-tuning the champion on the sliding window.
    [run] = [r["body"] for r in requests if r["method"] == "POST" and r["path"].endswith("/runs")]
    at = datetime.fromisoformat(windows[1]["end"])
    expected = retraining_arguments(settings, at, version)
    assert run["runtime_config"]["parameters"] == expected
    assert expected["warm_start_version"] == version
    assert expected["train_end"] < windows[1]["end"][:10]  # only days whose outcomes landed
    assert run["display_name"] == f"retrain-v{version}-{windows[1]['window']}"
    assert run["pipeline_spec"]["pipelineInfo"]["name"] == "e2eai-training"
    assert harmful.submitted is not None and harmful.submitted["run_id"] == "run-0001"
    # The audit log holds every decision and the submission, newest first.
    audit = store.list_audit(20)
    assert [a["action"] for a in audit] == [
        "retrain-decision",
        SUBMITTED,
        "retrain-decision",
        "retrain-decision",
    ]
    assert audit[1]["outcome"] == "done" and audit[1]["detail"]["run_id"] == "run-0001"
    assert [a["outcome"] for a in audit if a["action"] == "retrain-decision"] == [
        "blocked",
        "retrain",
        "hold",
    ]


def test_an_endpoint_that_refuses_is_audited_as_failed_and_nothing_crashes(world) -> None:
    settings, task, store, version, rows = world
    log(store, task, version, flipped(rows, task), MONDAY, 7)
    log(store, task, version, rows.iloc[:10], MONDAY + WEEK, 1)
    windows = monitor(settings, store).windows
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        host = f"http://127.0.0.1:{closed.getsockname()[1]}"
    assert [w["window"] for w in windows] == ["2013-01-14_2013-01-21"]
    [result] = trigger_retraining(settings, store, task, windows, kfp_submitter(settings, host))
    assert result.decision["retrain"] and result.submitted is None and result.error
    [failed] = [a for a in store.list_audit(10) if a["action"] == SUBMITTED]
    assert failed["outcome"] == "failed" and failed["detail"]["warm_start_version"] == version
    # A failed submission starts no cooldown: the next harmful window is submitted again.
    log(store, task, version, flipped(rows, task), MONDAY + WEEK, 7)
    log(store, task, version, rows.iloc[:10], MONDAY + 2 * WEEK, 1)
    [again] = trigger_retraining(settings, store, task, monitor(settings, store).windows, None)
    assert again.decision["retrain"] and again.decision["blocked"] is None
    assert again.error == "no pipeline.host to submit to"
