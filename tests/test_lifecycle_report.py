"""The run report, its summary and the ``e2eai run`` terminal summary, from a recorded run
(no training or serving: the record is filled in by hand)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from e2eai.jsonable import dumps, to_jsonable
from e2eai.lifecycle.record import LoopRecord
from e2eai.lifecycle.report import write_report
from e2eai.reporting import format_window, png_data_uri, render

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def _decision(action: str, before: int, after: int) -> dict:
    evidence = [{"metric": "roc_auc", "stable": 0.7, "canary": 0.71, "verdict": "pass"}]
    reason = "served <b>ROC-AUC</b> holds"
    return dict(action=action, weight_before=before, weight_after=after, reason=reason,
                evidence=evidence)  # fmt: skip


def _record(tmp_path: Path) -> LoopRecord:
    plot = tmp_path / "roc_curve.png"
    plot.write_bytes(PNG)
    record = LoopRecord(run_dir=tmp_path / "run")
    record.run_dir.mkdir()
    record.outcome = "challenger promoted: <script>alert(1)</script>"
    record.data = {"rows_in": 1200, "rows_accepted": 1000, "rows_quarantined": 150,
                   "rows_excluded": 50, "quality_report": "q.html"}  # fmt: skip
    for role, version, stage in (("champion", 1, "archived"), ("challenger", 2, "champion")):
        record.models[role] = {
            "version": version,
            "family": "torch_mlp",
            "stage": stage,
            "metrics": {"model": {"roc_auc": 0.71, "pr_auc": 0.4, "log_loss": None, "brier": 0.2}},
            "training_window": {"start": "2013-01-01", "end": "2013-01-24"},
            "holdout_window": {"start": "2013-01-25", "end": "2013-01-31"},
            "plots": {"roc_curve.png": str(plot)},
        }
    record.canary = [_decision("hold", 10, 10), _decision("promote", 10, 100)]
    record.steps = [{"step": "champion", "seconds": 12.345}, {"step": "canary", "seconds": 3.0}]
    return record


def test_the_report_escapes_text_and_embeds_the_plots(tmp_path: Path) -> None:
    record = _record(tmp_path)
    page = write_report(record).read_text()

    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "served &lt;b&gt;ROC-AUC&lt;/b&gt; holds" in page
    assert page.count("data:image/png;base64,") == 3  # two model plots + the canary plot
    assert "1,200 records in" in page and "2013-01-25..2013-01-31" in page
    assert "<td>0.7100</td>" in page and (record.run_dir / "canary.png").is_file()
    summary = json.loads((record.run_dir / "summary.json").read_text())
    assert summary == json.loads(dumps(record.summary()))
    assert [d["action"] for d in summary["canary_decisions"]] == ["hold", "promote"]


def test_e2eai_run_prints_a_short_table_and_json_on_request(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from e2eai.cli import app
    from e2eai.lifecycle import scenario

    record = _record(tmp_path)
    monkeypatch.setattr(scenario, "run_loop", lambda settings, progress, train: record)

    people = CliRunner().invoke(app, ["run", "--engine", "inprocess", "--scenario", "cycle"])
    assert people.exit_code == 0, people.output
    text = people.output
    assert "challenger promoted" in text and "challenger v2" in text
    assert "2013-01-01..2013-01-24" in text and "0.7100" in text
    assert "2 decision(s), final promote (10% → 100%)" in text
    assert "12.3" in text and f"report: {record.report_path}" in text
    assert "evidence" not in text and "{" not in text  # no JSON dumps for people

    machine = CliRunner().invoke(
        app, ["run", "--engine", "inprocess", "--scenario", "cycle", "--json"]
    )
    assert machine.exit_code == 0, machine.output
    assert json.loads(machine.stdout) == json.loads(dumps(record.summary()))


@dataclass
class _Point:
    day: date
    path: Path


def test_values_become_plain_json() -> None:
    value = {
        "n": np.int64(3),
        "xs": np.arange(2),
        np.int64(7): (_Point(date(2013, 5, 1), Path("a")),),
    }
    assert to_jsonable(value) == {"n": 3, "xs": [0, 1], 7: [{"day": "2013-05-01", "path": "a"}]}
    assert json.loads(dumps(value)) == {
        "n": 3,
        "xs": [0, 1],
        "7": [{"day": "2013-05-01", "path": "a"}],
    }
    with pytest.raises(TypeError, match="object"):
        to_jsonable(object())


def test_templates_autoescape_and_images_embed(tmp_path: Path) -> None:
    assert png_data_uri(tmp_path / "missing.png") is None
    assert png_data_uri(PNG).startswith("data:image/png;base64,iVBOR")
    assert format_window(None) == "–"
    page = render(
        "data_quality.html.j2",
        report={"source": "<s>", "snapshot": "abc", "window": {"start": "a", "end": "b"}},
        plot=png_data_uri(PNG),
        sections=[("Row accounting", {"rows_in": 3})],
        monthly={"columns": ["month"], "rows": [["2013-01"]]},
    )
    assert "&lt;s&gt;" in page and "<td>3</td>" in page


def test_windows_read_as_words_whether_days_rows_or_registry_records() -> None:
    from datetime import date

    from e2eai.registry.lineage import TrainingWindow
    from e2eai.reporting import format_window

    days = {"start": "2013-05-01", "end": "2013-05-14"}
    assert format_window(days) == "2013-05-01..2013-05-14"
    record = TrainingWindow(start=date(2013, 1, 1), end=date(2013, 4, 30))
    assert format_window(record) == "2013-01-01..2013-04-30"  # what the registry hands back
    rows = {"rows": 891, "fraction": 0.2, "seed": 13}
    assert format_window(rows) == "891 rows (20%, seed 13)"
    assert format_window(None) == "–"


# -- the canary's evidence: the confidence sequence each look saw ---------------------------


def test_the_confidence_sequence_of_every_look_is_plotted_per_canary() -> None:
    from e2eai.lifecycle.canary_evidence import looks, plot_confidence_sequences
    from e2eai.serving.canary_analysis import CanaryPolicy, SlotSamples, decide

    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.3).astype(int)
    p_stable = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.1, 3000), 0.01, 0.99)
    p_canary = np.clip(p_stable + rng.normal(0.05, 0.05, 3000) * (1 - 2 * y), 0.01, 0.99)
    paired = list(zip(p_stable.tolist(), p_canary.tolist(), y.tolist(), strict=True))
    health = SlotSamples(requests=500, latencies_ms=[2.0] * 500)
    policy = CanaryPolicy(require_labels=True)
    decisions = []
    for version in ("4", "5"):
        for n in (50, 500, 1500, 3000):
            decision = decide(
                health, health, policy=policy, stable_version="3", canary_version=version,
                canary_weight=10, paired=paired[:n],
            )  # fmt: skip
            decisions.append(decision.model_dump(mode="json"))
    seen = looks(decisions)
    # Every look reports its band, in order (before min_labelled rows it only holds).
    assert [(look.canary_version, look.rows) for look in seen] == [
        (v, n) for v in ("4", "5") for n in (50, 500, 1500, 3000)
    ]
    assert seen[0].action == "hold"
    for look in seen:
        assert look.lower <= look.mean <= look.upper and look.margin == policy.sequential_margin
    assert seen[-1].action == "rollback" and seen[-1].upper < 0  # a worse canary, seen as such
    png = plot_confidence_sequences(decisions)
    assert png is not None and png.startswith(b"\x89PNG")
    fixed = CanaryPolicy(analysis="fixed")
    versions = {"stable_version": "3", "canary_version": "4", "canary_weight": 10}
    only_fixed = [decide(health, health, policy=fixed, **versions).model_dump(mode="json")]
    assert looks(only_fixed) == [] and plot_confidence_sequences(only_fixed) is None
