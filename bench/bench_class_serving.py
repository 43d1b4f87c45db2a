"""Serving benchmark of an image or text task (a script, not a test): batch-1 latency of the
served champion, through the router and straight at the predictor.

Serves the registry champion of ``--home`` (a home where ``E2EAI_TASK=<task> e2eai run`` or
``e2eai train`` registered one) with ``LocalServing``, as ``e2eai serve`` does, then sends
``--requests`` sequential one-input V2 REST requests of the task's own kind, drawn from the
champion's ``holdout.parquet`` (real test photos as FP32 ``[1, 1, 28, 28]`` tensors, real
messages as ``BYTES``, tokenized by the predictor). Reported, for the router and for the
predictor alone: p50/p90/p99/max latency (client wall time, keep-alive connection), the
share of answers that match a direct ONNX Runtime run of the same graph (argmax), and the
predictor's process tree RSS after the run.

    E2EAI_TASK=support-triage .venv/bin/python bench/bench_class_serving.py --home /tmp/h
    E2EAI_TASK=fashion .venv/bin/python bench/bench_class_serving.py --home runs --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _percentiles(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p90_ms": round(float(np.percentile(values, 90)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "max_ms": round(float(values.max()), 2),
    }


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (the supervisor, the predictor)."""
    import subprocess

    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
        children = subprocess.run(
            ["pgrep", "-P", str(current)], capture_output=True, text=True, check=False
        ).stdout.split()
        todo.extend(int(c) for c in children)
    return round(total / 1024, 1)


def _timed(client: Any, url: str, bodies: list[dict[str, Any]]) -> tuple[list[float], list[Any]]:
    from e2eai.serving.client import v2_probabilities

    times, answers = [], []
    for body in bodies:
        started = time.perf_counter()
        response = client.post(url, json=body)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        answers.append(v2_probabilities(response.json())[0])
    return times, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="E2EAI_HOME with a champion")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    os.environ["E2EAI_HOME"] = str(args.home.resolve())

    import httpx

    from e2eai.config import get_settings
    from e2eai.monitoring.class_window import ServedGraph, reference_inputs
    from e2eai.registry import ModelRegistry
    from e2eai.serving.client import v2_request
    from e2eai.serving.local import LocalServing
    from e2eai.serving.processes import free_port
    from e2eai.serving.rollout import ModelSource
    from e2eai.tasks import load_task

    settings = get_settings()
    task = load_task(settings)
    if task.modality not in {"image", "text"}:
        sys.exit(f"task {task.name!r} is {task.modality}: bench/bench_serving.py serves tables")
    work = settings.home / "bench" / "class_serving"
    with ModelRegistry.from_settings(settings) as registry:
        champion = registry.champion(settings.serving.model_name)
        if champion is None:
            sys.exit(f"no champion in {settings.home}: run `e2eai run` or `e2eai train` first")
        holdout = pd.read_parquet(
            registry.fetch_artifact(champion.version, "holdout.parquet", work)
        )
        onnx = registry.fetch_artifact(champion.version, "model.onnx", work)
    total = args.warmup + args.requests
    rows = holdout.sample(total, replace=len(holdout) < total, random_state=0)
    bodies = [v2_request(rows.iloc[i : i + 1], task) for i in range(total)]
    expected = ServedGraph(onnx, task, work).probabilities(reference_inputs(task, rows))

    manager = LocalServing(settings)
    state = manager.start(ModelSource.from_registry(champion.version), port=free_port())
    try:
        assert state.stable is not None
        routed = f"{state.endpoint}/v2/models/{state.model_name}/infer"
        direct = f"http://127.0.0.1:{state.stable.http_port}/v2/models/{state.model_name}/infer"
        result: dict[str, Any] = {
            "task": task.name,
            "modality": task.modality,
            "version": champion.version,
            "model_bytes": onnx.stat().st_size,
            "requests": args.requests,
        }
        with httpx.Client(timeout=30.0) as client:
            for name, url in (("router", routed), ("predictor", direct)):
                _timed(client, url, bodies[: args.warmup])
                times, answers = _timed(client, url, bodies[args.warmup :])
                predicted = np.asarray(answers).argmax(axis=1)
                agree = float((predicted == expected[args.warmup :].argmax(axis=1)).mean())
                result[name] = {**_percentiles(times), "argmax_agreement": round(agree, 4)}
        result["predictor_rss_mb"] = _tree_rss_mb(state.stable.pid)
    finally:
        manager.stop()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{task.name} v{champion.version} ({result['model_bytes'] / 1e3:,.0f} kB), batch 1:")
    for name in ("router", "predictor"):
        r = result[name]
        print(
            f"  {name:9s} p50 {r['p50_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f}  "
            f"p99 {r['p99_ms']:6.2f}  max {r['max_ms']:6.2f}  agree {r['argmax_agreement']:.4f}"
        )
    print(f"  predictor process tree RSS {result['predictor_rss_mb']} MB")


if __name__ == "__main__":
    main()
