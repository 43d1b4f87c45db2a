"""The whole loop for the image task on real Fashion-MNIST images: a CNN champion served by
a real ModelServer, a warm-started challenger as canary, FP32 images replayed through the
router with shadow scoring, and the canary decision on paired rows.

The paired rows the analysis read are checked against both registered graphs scored
offline, and the sequential test re-run on them must reach the decision the loop reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fashion_subset import INSTALLED, NOT_INSTALLED, subset_folder

from e2eai.config import Settings
from e2eai.export.image_onnx import onnx_probabilities, session
from e2eai.lifecycle.scenario import run_loop, train_in_process
from e2eai.registry import ModelRegistry
from e2eai.serving import sequential
from e2eai.serving.canary_analysis import CanaryPolicy, read_paired_rows
from e2eai.serving.processes import free_port
from e2eai.serving.state import serving_dir
from e2eai.training.image_families import frame_images

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not INSTALLED, reason=NOT_INSTALLED)]


def _settings(home: Path, source: Path) -> Settings:
    return Settings(
        home=home,
        task="fashion",
        data={"source": str(source)},
        training={"workers": 1, "epochs": 2, "seed": 11},
        # The loop's mechanics are under test here, not model quality.
        gates={"baseline_margin": -1.0, "champion_tolerance": 1.0},
        export={"quantize": False},
        serving={
            "port": free_port(),
            # 1,000 held-out images: ~100 canary requests at 10 %, health checks on 30.
            "canary_min_requests": 30,
            "canary_min_labelled": 100,
            "canary_auc_noninferiority_margin": 0.2,
        },
    )


def test_the_image_loop_serves_a_cnn_and_decides_on_its_warm_started_canary(
    tmp_path: Path,
) -> None:
    source = subset_folder(tmp_path / "idx", {"train": 3000, "t10k": 2000})
    settings = _settings(tmp_path / "home", source)
    messages: list[str] = []
    record = run_loop(settings, progress=messages.append, train=train_in_process)

    summary = json.loads((record.run_dir / "summary.json").read_text())
    assert summary["data"]["rows_in"] == 5000
    assert summary["data"]["rows_accepted"] + summary["data"]["rows_quarantined"] == 5000
    assert set(record.models) == {"champion", "challenger"}, record.outcome
    champion, challenger = record.models["champion"], record.models["challenger"]
    assert champion["family"] == challenger["family"] == "cnn"
    assert set(champion["metrics"]) >= {"model", "pixel_logreg"}
    assert champion["metrics"]["model"]["accuracy"] > 0.5
    with ModelRegistry.from_settings(settings) as registry:
        child, parent = registry.get(challenger["version"]), registry.get(champion["version"])
    assert child.lineage["parent_version"] == champion["version"]
    # Continued at the fine-tuning rate: the parent's own would knock it off its optimum.
    factor = settings.training.finetune_lr_factor
    assert child.params["warm_start"] is True and child.params["finetune_lr_factor"] == factor
    assert child.params["learning_rate"] == pytest.approx(parent.params["learning_rate"] * factor)

    assert record.canary, "the canary was never analysed"
    final = record.canary[-1]
    rows = read_paired_rows(
        serving_dir(settings.home) / f"canary_paired_{final['canary_version']}.npy"
    )
    evidence = next(e for e in final["evidence"] if e["metric"] == "brier_paired")
    assert len(rows) == evidence["n_stable"] >= 100
    # Offline: both graphs on every replayed image; a paired row is, for one of them, the
    # probability each graph gave the true class, with label 1.
    replay = pd.read_parquet(challenger["holdout_path"])
    images, y = frame_images(replay), replay["label"].to_numpy()
    offline = []
    with ModelRegistry.from_settings(settings) as registry:
        for model in (champion, challenger):
            path = registry.fetch_artifact(
                model["version"], "model.onnx", tmp_path / f"check-{model['version']}"
            )
            offline.append(onnx_probabilities(session(path), images)[np.arange(len(y)), y])
    expected = np.column_stack([*offline, np.ones(len(y))])
    distance = np.abs(rows[:, None, :] - expected[None, :, :]).max(axis=2).min(axis=1)
    assert distance.max() <= 1e-5, distance.max()

    policy = CanaryPolicy.from_settings(settings)
    implied = sequential.decide(
        rows[:, 0],
        rows[:, 1],
        rows[:, 2],
        sequential.SequentialPolicy(
            alpha=policy.alpha / 2,
            margin=policy.sequential_margin,
            min_labelled=policy.min_labelled,
        ),
    )
    assert final["action"] in ("promote", "rollback"), record.outcome
    assert implied.action == final["action"], (implied.reason, final["reason"])
    report = (record.run_dir / "report.html").read_text()
    assert 'alt="canary confidence sequences"' in report
    # The monitoring pass over the served answers: the replayed photos are held-out rows of
    # the same distribution as the reference, so quality is the models' and nothing drifted.
    monitoring = summary["monitoring"]
    assert monitoring["rows"] == monitoring["labelled"] >= 250
    assert monitoring["reference_version"] in (champion["version"], challenger["version"])
    assert monitoring["accuracy"] > 0.5 and monitoring["drift_detected"] is False
    assert "accuracy (95 % interval)" in Path(monitoring["report"]).read_text()
    assert "Monitoring of the served answers" in report
    assert any("cnn" in m for m in messages if m.startswith("1/5"))
