"""The whole loop on a short real window: champion → serving → fine-tuned canary → decision.

Real engines throughout: Feast, torchrun-free torch training (one worker), ONNX export,
the registry on SQLite, KServe ModelServer processes behind the router, canary analysis.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from conftest import copy_feature_repo

from e2eai.config import Settings
from e2eai.export.signature import onnx_proba
from e2eai.lifecycle.scenario import run_loop, train_in_process
from e2eai.registry import ModelRegistry
from e2eai.serving import sequential
from e2eai.serving.canary_analysis import CanaryPolicy, read_paired_rows
from e2eai.serving.processes import free_port
from e2eai.serving.state import serving_dir
from e2eai.tasks import load_task

pytestmark = pytest.mark.slow


def _settings(home: Path) -> Settings:
    return Settings(
        home=home,
        data={"start": date(2013, 1, 1), "end": date(2013, 2, 20)},
        features={"repo": copy_feature_repo(home / "feature_repo")},
        training={
            "family": "torch_mlp",
            "train_start": date(2013, 1, 1),
            "train_end": date(2013, 1, 24),
            "validation_days": 5,
            "holdout_days": 7,
            "workers": 1,
            "epochs": 2,
        },
        # The loop's mechanics are under test here, not model quality.
        gates={"baseline_margin": -1.0, "champion_tolerance": 1.0},
        export={"quantize": False},
        serving={
            "port": free_port(),
            "canary_min_requests": 100,
            "canary_min_labelled": 100,
            # a short replay: decide on a looser non-inferiority margin than production
            "canary_auc_noninferiority_margin": 0.2,
        },
    )


def test_the_loop_serves_a_champion_and_decides_on_a_fine_tuned_canary(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    messages: list[str] = []
    record = run_loop(settings, progress=messages.append, train=train_in_process)

    summary = json.loads((record.run_dir / "summary.json").read_text())
    assert summary["data"]["rows_in"] == (
        summary["data"]["rows_accepted"]
        + summary["data"]["rows_quarantined"]
        + summary["data"]["rows_excluded"]
    )
    champion = record.models["champion"]
    challenger = record.models["challenger"]
    # The challenger is a warm start of the champion, trained on the newer window.
    assert challenger["training_window"]["start"] > champion["training_window"]["end"]
    assert set(champion["metrics"]) >= {"model", "logreg", "hist_gb"}

    decisions = record.canary
    assert decisions, "the canary was never analysed"
    final = decisions[-1]
    assert final["action"] in ("promote", "rollback"), record.outcome
    verdicts = {e["metric"]: e["verdict"] for e in final["evidence"]}
    assert verdicts["brier_paired"] == {"promote": "pass", "rollback": "fail"}[final["action"]]
    if final["action"] == "promote":
        assert set(verdicts.values()) == {"pass"}, final
    assert {"promote": "promoted", "rollback": "rolled back"}[final["action"]] in record.outcome
    assert_the_decision_is_what_the_data_implies(settings, record, final)

    with ModelRegistry.from_settings(settings) as registry:
        new = registry.get(challenger["version"])
        old = registry.get(champion["version"])
        assert new.lineage["parent_version"] == champion["version"]
        if final["action"] == "promote":
            assert (str(new.stage), str(old.stage)) == ("champion", "archived")
        else:
            assert str(old.stage) == "champion"
            assert str(new.stage) in ("rejected", "archived")

    report = (record.run_dir / "report.html").read_text()
    assert "Canary" in report and "data:image/png;base64" in report
    assert 'alt="canary confidence sequences"' in report
    assert any(m.startswith("4/5 canary") for m in messages)


def assert_the_decision_is_what_the_data_implies(
    settings: Settings, record: Any, final: dict[str, Any]
) -> None:
    """The rows the final analysis read are the replayed rows scored by both registered
    graphs (shadow scoring paired every labelled row, whoever answered it), and the sequential
    test on them, at the level and margin of the settings, decides what the loop decided."""
    task = load_task(settings)
    rows = read_paired_rows(
        serving_dir(settings.home) / f"canary_paired_{final['canary_version']}.npy"
    )
    evidence = next(e for e in final["evidence"] if e["metric"] == "brier_paired")
    assert len(rows) == evidence["n_stable"] >= policy_rows(settings)
    # Offline: both graphs on every replayed row; each paired row is one of them.
    replay = pd.read_parquet(record.models["challenger"]["holdout_path"])
    offline = []
    with ModelRegistry.from_settings(settings) as registry:
        for role in ("champion", "challenger"):
            version = record.models[role]["version"]
            path = registry.fetch_artifact(version, "model.onnx", settings.home / f"check-{role}")
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            offline.append(onnx_proba(session, replay, task))
    expected = np.column_stack([*offline, replay[task.label].to_numpy(dtype=float)])
    matched = np.abs(rows[:, None, :] - expected[None, :, :]).max(axis=2).min(axis=1)
    assert matched.max() <= 1e-5, matched.max()
    policy = CanaryPolicy.from_settings(settings)
    implied = sequential.decide(
        rows[:, 0],
        rows[:, 1],
        rows[:, 2],
        sequential.SequentialPolicy(
            alpha=policy.alpha / 2,  # the health checks keep a quarter each
            margin=policy.sequential_margin,
            min_labelled=policy.min_labelled,
        ),
    )
    assert implied.action == final["action"], (implied.reason, final["reason"])


def policy_rows(settings: Settings) -> int:
    """The fewest paired rows the sequential test decides on."""
    return CanaryPolicy.from_settings(settings).min_labelled
