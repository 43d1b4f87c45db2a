"""The whole loop on a short real window: champion → serving → fine-tuned canary → decision.

Real engines throughout: Feast, torchrun-free torch training (one worker), ONNX export,
the registry on SQLite, KServe ModelServer processes behind the router, canary analysis.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from conftest import copy_feature_repo

from e2eai.config import Settings
from e2eai.lifecycle.scenario import run_loop, train_in_process
from e2eai.registry import ModelRegistry
from e2eai.serving.processes import free_port

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
    if final["action"] == "promote":
        # Ground truth was fed back: a promotion rests on served ROC-AUC too.
        assert verdicts["roc_auc"] == "pass", final
        assert set(verdicts.values()) == {"pass"}, final
    else:
        assert "fail" in verdicts.values(), final
    assert {"promote": "promoted", "rollback": "rolled back"}[final["action"]] in record.outcome

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
    assert any(m.startswith("4/4 canary") for m in messages)
