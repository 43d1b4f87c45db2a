"""A monitoring pass over an image task's and a text task's prediction log.

Each log is built the way the app writes it: real requests (Fashion-MNIST test photos as the
model-sized PNG the app stores; real customer messages), answered by a registered version's
ONNX graph, labelled with their real classes, spread over weekly windows. The first window
is drawn like the version's reference; later ones carry an injected shift (darkened or
rotated photos; longer messages in another script) that the pass must find and attribute,
while quality, risk and reports are computed from the logged answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from class_app_fixtures import b64, encoded, fashion_cnn_onnx, triage_expected, triage_onnx
from store_fixtures import store_labelled

from e2eai.app.store import AppStore
from e2eai.config import MonitoringSettings, Settings
from e2eai.export.image_onnx import onnx_probabilities, session
from e2eai.monitoring.class_window import wilson_interval
from e2eai.monitoring.monitor import monitor, reports_dir
from e2eai.registry import ModelRegistry
from e2eai.tasks import load_task

pytestmark = pytest.mark.slow
MONDAY = datetime(2013, 1, 14, tzinfo=UTC)  # a window start (anchor 2013-01-07 + 7 days)
WEEK = timedelta(days=7)
PER_WINDOW = 300


def fashion_test_set() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 real Fashion-MNIST test photos (uint8 [N, 28, 28]) and their labels."""
    from e2eai.tasks.fashion import DEBIAN_DIR
    from e2eai.tasks.fashion.data import PARTS
    from e2eai.tasks.fashion.idx import read_idx

    images, labels = PARTS["t10k"]
    return (
        read_idx(DEBIAN_DIR / images).values.astype(np.uint8),
        read_idx(DEBIAN_DIR / labels).values.astype(np.int64),
    )


def triage_messages() -> pd.DataFrame:
    """Every accepted message of the packaged corpus (text, label), as the data stage reads it."""
    from e2eai.tasks.support_triage import default_csv
    from e2eai.tasks.support_triage.data import read_records, record_problems

    frame, codes, _ = record_problems(read_records(default_csv()))
    return frame.loc[codes == "", ["text", "label"]].reset_index(drop=True)


def register(settings: Settings, onnx: Path, frames: dict[str, pd.DataFrame], holdout: dict):
    """Register ``onnx`` with its reference and holdout rows as the champion; its version."""
    artifacts = {"model.onnx": onnx}
    for name, frame in frames.items():
        path = settings.home / name
        frame.to_parquet(path, index=False)
        artifacts[name] = path
    with ModelRegistry.from_settings(settings) as registry:
        return registry.register(
            name=settings.serving.model_name,
            family="cnn" if settings.task == "fashion" else "minilm_finetune",
            artifacts=artifacts,
            metrics={"roc_auc": holdout.get("roc_auc"), "holdout": {"model": holdout}},
            params={},
            lineage={},
            stage="champion",
        ).version


def log(store, task, version, requests, probabilities, labels, start: datetime) -> None:
    """Store one prediction per request, spread over a week from ``start``, labelled."""
    answers = [
        {
            "request": request,
            "probability": float(np.max(row)),
            "predicted_class": int(np.argmax(row)),
            "class_probabilities": [float(v) for v in row],
        }
        for request, row in zip(requests, probabilities, strict=True)
    ]
    store_labelled(store, task, version, answers, labels, start, WEEK)


@pytest.fixture(scope="module")
def fashion_pass(tmp_path_factory):
    """Three weekly windows of photos (as drawn, darkened, rotated) and the pass over them."""
    home = tmp_path_factory.mktemp("fashion-monitoring")
    settings = Settings(
        home=home,
        task="fashion",
        monitoring=MonitoringSettings(min_rows=200, min_labelled=200),
    )
    task = load_task(settings)
    pixels, labels = fashion_test_set()
    order = np.random.default_rng(7).permutation(len(pixels))
    pixels, labels = pixels[order], labels[order]

    def frame(part: slice) -> pd.DataFrame:
        return pd.DataFrame(
            {"image_id": [f"t{i}" for i in range(part.start, part.stop)],
             "label": labels[part], "image": [p.tobytes() for p in pixels[part]]}
        )  # fmt: skip

    onnx = fashion_cnn_onnx(home / "fashion.onnx")
    version = register(
        settings,
        onnx,
        {"reference.parquet": frame(slice(0, 1000)), "holdout.parquet": frame(slice(1000, 1600))},
        {"accuracy": 0.1, "macro_f1": 0.05, "roc_auc": 0.5},
    )
    sess = session(onnx)
    windows = {
        "as drawn": pixels[2000 : 2000 + PER_WINDOW],
        "darkened": (pixels[3000 : 3000 + PER_WINDOW] * 0.35).astype(np.uint8),
        "rotated": np.rot90(pixels[4000 : 4000 + PER_WINDOW], k=1, axes=(1, 2)).copy(),
    }
    truth = {
        "as drawn": labels[2000 : 2000 + PER_WINDOW],
        "darkened": labels[3000 : 3000 + PER_WINDOW],
        "rotated": labels[4000 : 4000 + PER_WINDOW],
    }
    store = AppStore.from_settings(settings)
    store.migrate()
    answers = {}
    for k, (name, images) in enumerate(windows.items()):
        requests = [{"image": {"b64": b64(encoded(image))}} for image in images]
        answers[name] = onnx_probabilities(sess, (images.astype(np.float32) / 255.0)[:, None])
        log(store, task, version, requests, answers[name], truth[name], MONDAY + k * WEEK)
    log(store, task, version, requests[:1], answers[name][:1], truth[name][:1], MONDAY + 3 * WEEK)
    result = monitor(settings, store)
    store.close()
    by_name = dict(zip(windows, result.windows, strict=True))
    return settings, by_name, answers, truth


def test_quality_of_an_image_window_is_its_logged_answers_accuracy(fashion_pass) -> None:
    _, windows, answers, truth = fashion_pass
    for name, window in windows.items():
        quality = window["quality"]
        right = int((answers[name].argmax(axis=1) == truth[name]).sum())
        assert quality["rows"] == PER_WINDOW
        assert quality["accuracy"] == pytest.approx(right / PER_WINDOW)
        low, high = wilson_interval(right, PER_WINDOW)
        assert (quality["accuracy_low"], quality["accuracy_high"]) == pytest.approx((low, high))
        assert low <= quality["accuracy"] <= high
        assert sum(quality["label_share"].values()) == pytest.approx(1.0)
        assert window["holdout_accuracy"] == 0.1 and window["reference_rows"] == 1000


def test_image_drift_is_absent_as_drawn_and_attributed_when_shifted(fashion_pass) -> None:
    _, windows, _, _ = fashion_pass
    drawn, dark, rotated = windows["as drawn"], windows["darkened"], windows["rotated"]
    assert drawn["drift"]["drift_detected"] is False, drawn["drift"]["drifted"]
    assert {"brightness", "dark_share"} <= set(dark["drift"]["image_statistics_drifted"])
    assert "horizontal_edge_share" in rotated["drift"]["image_statistics_drifted"]
    assert "brightness" not in rotated["drift"]["image_statistics_drifted"]
    assert dark["drift"]["embedding_source"] == "probabilities"
    names = {f["name"] for f in drawn["drift"]["features"]}
    assert {"brightness", "contrast", "sharpness", "embedding_pc1"} <= names
    # The answers' class mix moves with the darkened photos; prediction drift is measured.
    assert [f["name"] for f in dark["prediction_drift"]["features"]] == [
        "predicted_class",
        "confidence",
    ]


def test_risk_is_tracked_on_misclassification_and_reports_are_written(fashion_pass) -> None:
    settings, windows, _, _ = fashion_pass
    risk = windows["rotated"]["risk"]
    assert risk["loss"] == "misclassification" and risk["windows"] == 3
    assert risk["n"] == 3 * PER_WINDOW
    out = reports_dir(settings)
    for window in windows.values():
        page = (out / window["report"]).read_text()
        assert "accuracy (95 % interval)" in page and "T-shirt/top" in page
        assert (out / window["drift_report"]).is_file()


def test_the_policy_reads_a_class_window_on_its_own_figures(fashion_pass) -> None:
    """The retraining policy decides on each image window without error, reading accuracy,
    the class mix and the misclassification risk; a retrain would fine-tune the champion on
    the task's rows (no days to slide)."""
    from e2eai.monitoring.trigger import retraining_arguments, trigger_retraining

    settings, windows, _, _ = fashion_pass
    task = load_task(settings)
    with AppStore.from_settings(settings) as store:
        triggered = trigger_retraining(settings, store, task, list(windows.values()), None)
        audited = [e for e in store.list_audit(50) if e["action"] == "retrain-decision"]
    assert len(triggered) == len(audited) == 3
    for t in triggered:
        assert t.error in (None, "no pipeline.host to submit to"), t.error
        evidence = t.decision["evidence"]
        assert evidence["performance"]["holdout_accuracy"] == 0.1
        assert evidence["label_shift"]["test"] == "chi-square homogeneity"
        assert evidence["risk"]["loss"] == "misclassification"
        assert evidence["risk"]["tolerance"] == settings.retraining.accuracy_drop
    at = datetime.fromisoformat(windows["rotated"]["end"])
    assert retraining_arguments(settings, at, 1, task) == {"warm_start_version": 1}


def class_window(accuracy: float, high: float, shares: dict[str, float], rows: int) -> dict:
    return {
        "window": "w",
        "reference_version": 1,
        "labelled": rows,
        "quality": {
            "rows": rows,
            "accuracy": accuracy,
            "accuracy_high": high,
            "label_share": shares,
        },
    }


def test_accuracy_and_class_mix_rules_fire_only_past_their_bounds() -> None:
    from e2eai.config import RetrainingSettings
    from e2eai.monitoring.policy import ChampionState, decide

    s = RetrainingSettings(min_labelled=500, cooldown_days=0)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    champion = ChampionState(
        version=1,
        holdout_roc_auc=None,
        reference_positive_rate=float("nan"),
        trained_until=now,
        reference_rows=1000,
        holdout_accuracy=0.80,
        reference_class_counts=(300, 300, 400),
    )
    same = {"a": 0.3, "b": 0.3, "c": 0.4}

    def verdict(window: dict) -> dict:
        return decide(window, champion, now, None, False, s).model_dump()["evidence"]

    held = verdict(class_window(0.79, 0.82, same, 1000))
    assert not held["performance"]["fired"] and not held["label_shift"]["fired"]
    assert held["label_shift"]["p_value"] > 0.5
    low = verdict(class_window(0.70, 0.77, same, 1000))  # 0.77 < 0.80 - 0.02
    assert low["performance"]["fired"] and low["performance"]["floor"] == pytest.approx(0.78)
    shifted = verdict(class_window(0.80, 0.83, {"a": 0.6, "b": 0.2, "c": 0.2}, 1000))
    assert shifted["label_shift"]["fired"]
    assert shifted["label_shift"]["largest_share_change"] == pytest.approx(0.3)
    few = verdict(class_window(0.70, 0.77, {"a": 0.6, "b": 0.2, "c": 0.2}, 100))
    assert not few["performance"]["fired"] and not few["label_shift"]["fired"]
    assert "fewer than 500" in few["performance"]["note"]


LOOK_ALIKES = str.maketrans("aceopxyijshACEHIJKMOPSTX", "асеорхуіјѕһАСЕНІЈКМОРЅТХ")


@pytest.fixture(scope="module")
def triage_pass(tmp_path_factory):
    """Two weekly windows of real messages: as written, and longer ones in Cyrillic look-alike
    letters; the pass over them."""
    home = tmp_path_factory.mktemp("triage-monitoring")
    settings = Settings(
        home=home,
        task="support-triage",
        monitoring=MonitoringSettings(min_rows=200, min_labelled=200),
    )
    task = load_task(settings)
    messages = triage_messages().sample(frac=1.0, random_state=3).reset_index(drop=True)
    onnx = triage_onnx(home / "triage.onnx")
    version = register(
        settings,
        onnx,
        {"reference.parquet": messages.iloc[:600], "holdout.parquet": messages.iloc[600:1000]},
        {"accuracy": 0.4, "macro_f1": 0.3, "roc_auc": 0.5},
    )
    written = messages.iloc[1000 : 1000 + PER_WINDOW]
    shifted = messages.iloc[2000 : 2000 + PER_WINDOW]
    windows = {
        "as written": (list(written["text"]), written["label"].to_numpy()),
        "longer, Cyrillic": (
            [f"{t} {t}".translate(LOOK_ALIKES) for t in shifted["text"]],
            shifted["label"].to_numpy(),
        ),
    }
    store = AppStore.from_settings(settings)
    store.migrate()
    answers = {}
    for k, (name, (texts, labels)) in enumerate(windows.items()):
        answers[name] = triage_expected(texts)
        requests = [{"text": t} for t in texts]
        log(store, task, version, requests, answers[name], labels, MONDAY + k * WEEK)
    log(store, task, version, requests[:1], answers[name][:1], labels[:1], MONDAY + 2 * WEEK)
    result = monitor(settings, store)
    store.close()
    return dict(zip(windows, result.windows, strict=True)), answers, windows, home


def test_a_text_window_is_judged_on_its_answers_and_its_messages(triage_pass) -> None:
    windows, answers, asked, home = triage_pass
    written, shifted = windows["as written"], windows["longer, Cyrillic"]
    for name, window in windows.items():
        labels = asked[name][1]
        right = int((answers[name].argmax(axis=1) == labels).sum())
        assert window["quality"]["accuracy"] == pytest.approx(right / PER_WINDOW)
        assert window["quality"]["priority"]["class"] == "negative"
        assert window["risk"]["loss"] == "misclassification"
    assert written["drift"]["drift_detected"] is False, written["drift"]["drifted"]
    assert written["drift"]["embedding_source"] == "minilm"
    # The reference's 600 messages were embedded for the first window and cached.
    cached = list((home / "monitoring" / "reference").glob("v*/minilm-64-600.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (600, 384)
    moved = set(shifted["drift"]["descriptors_drifted"])
    assert {"length", "non_latin_share", "oov_share"} <= moved
    # The served graph answers by token count: longer messages move the answers too.
    drifted_answers = {f["name"] for f in shifted["prediction_drift"]["features"] if f["drifted"]}
    assert drifted_answers
