"""Drift benchmark (a script, not a test): what a check of wide data costs, and its error rates.

Rows: the data and feature stages on conftest's ten real January days (as bench_app.py
builds them, 8,614 flights), every model input of the flight task (38). Measured:

  (a) cost at 100,000 rows × 38 inputs on each side. The rows are drawn with replacement
      from the two halves of the real window (real values, no noise added: a timing
      workload, not a null). Timed: the check with its default sampling (20,000 rows a
      side), the check of all 100,000 rows, rendering Evidently's report of the check
      (``save_drift``: HTML and JSON), and Evidently's ``DataDriftPreset`` on the same
      rows — the default's own cost (with its plots) for comparison. Warm process.
  (b) false alarms over ``--splits`` random i.i.d. splits of the real window, at three
      sizes: the calibrated check (``drift_detected``) against Evidently's defaults — any
      column drifted, and the preset's dataset verdict (drifted share ≥ 0.5). The default
      verdicts are Evidently's own stattests as the preset picks them
      (``evidently_default_drift``), checked against a real ``DataDriftPreset`` run on the
      first split of each size (the drifted-column counts must agree).
  (c) power: drift injected into one half (warmer weather, the top carrier over-weighted),
      against the other half and as a 300-row window: found by which verdict.

Target: (a) ≤ 10 s for the check.

    .venv/bin/python bench/bench_drift.py --splits 20 --out bench/results/drift.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from bench_app import materialized_flight_window  # noqa: E402

from e2eai.monitoring.drift import (  # noqa: E402
    DriftSettings,
    check_drift,
    evidently_default_drift,
    save_drift,
)
from e2eai.tasks import load_task  # noqa: E402

RESULTS = BENCH / "results" / "drift.json"
TARGET_SECONDS = 10.0
ROWS = 100_000
SIZES = {  # (reference, current) rows taken from the two halves; None: the whole half
    "half vs half": (None, None),
    "1000 vs 1000": (1000, 1000),  # Evidently's defaults: per-column p-values at 0.05
    "half vs 300": (None, 300),  # Evidently's defaults: distances at 0.1
}
PRESET_SHARE = 0.5  # DataDriftPreset's drift_share: its dataset-drift verdict
T = TypeVar("T")


def halves(rows: pd.DataFrame, seed: int, sizes=(None, None)) -> tuple[pd.DataFrame, ...]:
    shuffled = rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    half = len(shuffled) // 2
    reference, current = shuffled.iloc[:half], shuffled.iloc[half:].reset_index(drop=True)
    return reference.iloc[: sizes[0]], current.iloc[: sizes[1]]


def timed(work: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = work()
    return round(time.perf_counter() - started, 2), value


def preset_drifted_count(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict) -> int:
    """Drifted columns by a real ``DataDriftPreset()`` run (its DriftedColumnsCount)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(
            numerical_columns=[n for n, k in kinds.items() if k == "numeric"],
            categorical_columns=[n for n, k in kinds.items() if k == "categorical"],
        )
        snapshot = Report([DataDriftPreset(drift_share=PRESET_SHARE)]).run(
            current_data=Dataset.from_pandas(
                current[list(kinds)].reset_index(drop=True), data_definition=definition
            ),
            reference_data=Dataset.from_pandas(
                reference[list(kinds)].reset_index(drop=True), data_definition=definition
            ),
        )
    metrics = snapshot.dict()["metrics"]
    count = next(m for m in metrics if m["metric_name"].startswith("DriftedColumnsCount"))
    return int(count["value"]["count"])


def verdicts(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict) -> dict:
    """The calibrated verdict (and what it named) and Evidently's two default verdicts."""
    result = check_drift(reference, current, kinds)
    default = [f.name for f in evidently_default_drift(reference, current, kinds) if f.drifted]
    return {
        "calibrated": result.drift_detected,
        "calibrated_drifted": result.drifted,
        "default_any_column": bool(default),
        "default_dataset": len(default) / len(kinds) >= PRESET_SHARE,
        "default_drifted": default,
    }


def cost(rows: pd.DataFrame, kinds: dict, workdir: Path) -> dict:
    """(a) at ROWS rows a side."""
    part_a, part_b = halves(rows, 7)
    reference = part_a.sample(ROWS, replace=True, random_state=1).reset_index(drop=True)
    current = part_b.sample(ROWS, replace=True, random_state=2).reset_index(drop=True)
    check_drift(part_a, part_b, kinds)  # warm-up: Evidently's imports and registries
    check_s, result = timed(lambda: check_drift(reference, current, kinds))
    unsampled = DriftSettings(max_rows=ROWS)
    all_rows_s, _ = timed(lambda: check_drift(reference, current, kinds, settings=unsampled))
    report_s, _ = timed(lambda: save_drift(result, workdir / "drift.html", workdir / "drift.json"))
    preset_s, _ = timed(lambda: preset_drifted_count(reference, current, kinds))
    return {
        "rows_per_side": ROWS,
        "inputs": len(kinds),
        "check_s": check_s,
        "check_rows_per_side": result.rows_current,
        "check_all_rows_s": all_rows_s,
        "report_s": report_s,
        "report_html_mb": round((workdir / "drift.html").stat().st_size / 1e6, 1),
        "evidently_preset_s": preset_s,
    }


def false_alarms(rows: pd.DataFrame, kinds: dict, splits: int) -> dict:
    """(b) at every size of SIZES."""
    rates = {}
    for label, sizes in SIZES.items():
        counts = {"calibrated": 0, "default_any_column": 0, "default_dataset": 0}
        checked = None
        for seed in range(splits):
            reference, current = halves(rows, seed, sizes)
            verdict = verdicts(reference, current, kinds)
            for key in counts:
                counts[key] += verdict[key]
            if seed == 0:  # the shortcut is what the preset decides
                checked = preset_drifted_count(reference, current, kinds) == len(
                    verdict["default_drifted"]
                )
        rows_ref, rows_cur = (len(part) for part in halves(rows, 0, sizes))
        rates[label] = {
            "rows_reference": rows_ref,
            "rows_current": rows_cur,
            **{key: round(count / splits, 3) for key, count in counts.items()},
            "default_matches_preset": checked,
        }
        print(f"== (b) {label}: {rates[label]}", file=sys.stderr)
    return rates


def power(rows: pd.DataFrame, kinds: dict) -> dict:
    """(c) drift injected into one half, against the other half and as a 300-row window."""
    reference, current = halves(rows, 101)
    top = current["carrier"].value_counts().index[0]
    over = np.where(current["carrier"] == top, 4.0, 1.0)
    drifted = {
        "temp +1 F": current.assign(temp=current["temp"] + 1.0),
        "temp +2 F": current.assign(temp=current["temp"] + 2.0),
        "temp +10 F": current.assign(temp=current["temp"] + 10.0),
        f"carrier {top} x4": current.sample(
            len(current), replace=True, weights=over, random_state=3
        ).reset_index(drop=True),
    }
    found = {}
    for name, shifted in drifted.items():
        for label, window in (("half", shifted), ("300 rows", shifted.iloc[:300])):
            found[f"{name}, {label}"] = verdicts(reference, window, kinds)
            print(f"== (c) {name}, {label}: {found[f'{name}, {label}']}", file=sys.stderr)
    return found


def run(splits: int) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    workdir = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    try:
        print("== data and feature stages on ten real days", file=sys.stderr)
        window = materialized_flight_window(workdir / "window")
        kinds = {f.name: f.kind for f in load_task(window.settings).features}
        rows = window.training
        print(f"== (a) {ROWS:,} rows × {len(kinds)} inputs a side", file=sys.stderr)
        costs = cost(rows, kinds, workdir)
        result = {
            "rows_window": len(rows),
            "inputs": len(kinds),
            "settings": DriftSettings().model_dump(),
            "cost": costs,
            "splits": splits,
            "false_alarms": false_alarms(rows, kinds, splits),
            "power": power(rows, kinds),
            "target_seconds": TARGET_SECONDS,
            "load_average": os.getloadavg(),
        }
        result["met"] = costs["check_s"] <= TARGET_SECONDS
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def table(result: dict) -> str:
    c = result["cost"]
    lines = [
        f"{c['rows_per_side']:,} rows × {c['inputs']} inputs a side: check {c['check_s']} s "
        f"(sampled to {c['check_rows_per_side']:,}; all rows {c['check_all_rows_s']} s), "
        f"report {c['report_s']} s ({c['report_html_mb']} MB HTML), "
        f"Evidently DataDriftPreset {c['evidently_preset_s']} s; "
        f"target check ≤ {result['target_seconds']:g} s: {'met' if result['met'] else 'NOT met'}",
        f"false alarms over {result['splits']} i.i.d. splits:",
        f"  {'rows ref/cur':<14} {'calibrated':>10} {'default any':>12} {'default set':>12}",
    ]
    for r in result["false_alarms"].values():
        lines.append(
            f"  {r['rows_reference']:>6}/{r['rows_current']:<7} {r['calibrated']:>10.0%} "
            f"{r['default_any_column']:>12.0%} {r['default_dataset']:>12.0%}"
        )
    lines.append("power (drift injected):")
    for name, v in result["power"].items():
        named = v["calibrated_drifted"]
        named_text = ", ".join(named[:4]) + ("…" if len(named) > 4 else "")
        lines.append(
            f"  {name:<26} calibrated {'yes' if v['calibrated'] else 'NO ':<3} ({named_text})"
            f"  default any {'yes' if v['default_any_column'] else 'no'}"
            f"  default set {'yes' if v['default_dataset'] else 'no'}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=20, help="Random splits per size in (b).")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Write the results as JSON.")
    args = parser.parse_args()
    result = run(args.splits)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
