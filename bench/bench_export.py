"""Export benchmark (not a test): ONNX Runtime vs torch eager latency, int8 vs fp32.

    .venv/bin/python bench/bench_export.py RUN_DIR [--out bench/results/export.json]

RUN_DIR is a training run directory (``run_training``'s ``run_dir``: ``model/`` with a torch
model and ``holdout.parquet``). Exports it, then times single-threaded inference at batch 1
and 256 (median of repeated runs): torch eager (forward on prepared tensors, and end to end
from a DataFrame), ONNX Runtime fp32 and int8 (from prepared feeds, lookup inside the graph).
Prints one JSON object and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from e2eai.config import (
    ExportSettings,
    Settings,
)
from e2eai.export import export_model
from e2eai.export.quantize import session
from e2eai.export.signature import onnx_feed
from e2eai.tasks import load_task
from e2eai.training.mlp import load_mlp, mlp_proba


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


@torch.no_grad()
def batch_latency(model, spec, fp32, int8, holdout: pd.DataFrame, batch: int, repeats: int):
    """Median milliseconds per inference of ``batch`` rows for each runtime."""
    rows = holdout.iloc[np.arange(batch) % len(holdout)]
    numeric, indices = (torch.from_numpy(a) for a in spec.encode(rows))
    feed = onnx_feed(rows, load_task(Settings()))
    return {
        "torch_eager_forward_ms": median_ms(lambda: model(numeric, indices), repeats),
        "torch_eager_from_frame_ms": median_ms(
            lambda: mlp_proba(model, spec, rows), max(repeats // 4, 10)
        ),
        "ort_fp32_ms": median_ms(lambda: fp32.run(None, feed), repeats),
        "ort_int8_ms": median_ms(lambda: int8.run(None, feed), repeats) if int8 else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/export.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # same footing as the single-threaded ORT sessions
    holdout = pd.read_parquet(args.run_dir / "holdout.parquet")
    started = time.perf_counter()
    result = export_model(
        args.run_dir / "model", holdout, args.run_dir / "bench-onnx", ExportSettings(quantize=True)
    )
    report: dict = {"export_seconds": time.perf_counter() - started, **result.summary()}
    model, spec = load_mlp(args.run_dir / "model")
    fp32 = session(result.fp32_path)
    int8 = session(result.quantization.int8_path) if result.quantization else None
    latency = {
        f"batch_{batch}": batch_latency(model, spec, fp32, int8, holdout, batch, args.repeats)
        for batch in (1, 256)
    }
    report["latency"] = latency
    report["load_average"] = os.getloadavg()
    text = json.dumps(report, indent=1, default=str)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
