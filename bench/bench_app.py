"""App benchmark (a script, not a test): what the app's API costs in front of the router.

A real deployment as tests/app_fixtures.py starts it: the data and feature stages run on a
short real window (ten days of January 2013, materialized into a Feast repo in a temporary
home), a registry champion served with Feast enrichment behind the router, and ``e2eai app``
in its own process with its SQLite database. Measured in one run, one real flight sent at a
fixed rate on a kept-alive connection (latency counted from each request's scheduled send
time, so a slow answer also delays the ones behind it):

  (a) app     ``POST /api/predictions`` with the flight, at 50 req/s;
  (b) router  the same flight straight to the router, at 50 req/s: V1 ``:explain`` (what the
              app calls: probability, model inputs, contributions) and V1 ``:predict``;
              (a) - (b, explain) is the app's own overhead (validation, the call, the record);
  (c) batch   60 flights in one ``POST /api/predictions``, ~100 requests at 10 req/s;
  (d) RSS     of the app process after the run.

Targets: single p99 ≤ 20 ms at 50 req/s with SQLite, batch-of-60 p99 ≤ 40 ms, RSS ≤ 300 MB.
The load generator runs on core 1; the servers are not pinned.

    .venv/bin/python bench/bench_app.py --seconds 20 --out bench/results/app.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))  # bench_serving's helpers
sys.path.insert(0, str(ROOT / "tests"))  # the deployment and flight-window fixtures

from app_fixtures import AppDeployment, flight_requests, start_app_deployment  # noqa: E402
from bench_serving import CLIENT_CORE, NAME, cpu_seconds, rss_mb  # noqa: E402
from conftest import FLIGHT_WINDOW, copy_feature_repo, flight_settings, flights_between  # noqa: E402

from e2eai.app.serving_client import serving_endpoint  # noqa: E402
from e2eai.config import ArtifactSettings  # noqa: E402

RESULTS = BENCH / "results" / "app.json"
TARGETS = {"single_p99_ms": 20.0, "batch_p99_ms": 40.0, "rss_mb": 300.0}
BATCH = 60


def materialized_flight_window(home: Path) -> SimpleNamespace:
    """prepare → feature tables → Feast apply → materialize on conftest's ten real days, and
    the window's training set (what the explaining champion is trained on)."""
    from e2eai.tasks import load_task
    from e2eai.tasks.flights.feature_tables import build_feature_tables
    from e2eai.tasks.flights.prepare import prepare_flights
    from e2eai.tasks.flights.sources import PACKAGED, read_raw_tables

    start, end = FLIGHT_WINDOW
    settings = flight_settings(home, start, end)
    copy_feature_repo(settings.features.repo)
    raw = read_raw_tables(PACKAGED, ArtifactSettings())
    prepare_flights(settings, raw=flights_between(raw, start, end))
    build_feature_tables(settings)
    task = load_task(settings)
    task.apply_features(settings)
    task.materialize(settings)
    return SimpleNamespace(settings=settings, training=task.training_set(settings, start, end))


def paced(url: str, body: bytes, rate: float, seconds: float, expect: int = 1) -> dict:
    """POST ``body`` to ``url`` at ``rate`` req/s on one connection; latency from schedule.

    An answer counts as an error unless it is a 200 with ``expect`` probabilities.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    interval = 1.0 / rate
    latencies, errors = [], 0
    start = time.perf_counter()
    for i in range(max(round(rate * seconds), 1)):
        scheduled = start + i * interval
        wait = scheduled - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        connection.request("POST", parts.path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - scheduled)
        if response.status != 200 or _answers(payload) != expect:
            errors += 1
    elapsed = time.perf_counter() - start
    connection.close()
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "achieved_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def with_app_cpu(pid: int, measure: Callable[[], dict]) -> dict:
    """``measure()``'s figures plus the app process's CPU per request over it (user + system:
    what the app itself costs, whatever else the machine is busy with)."""
    before = cpu_seconds(pid)
    figures = measure()
    used = cpu_seconds(pid) - before
    return {**figures, "app_cpu_ms_per_request": round(used / figures["requests"] * 1000, 3)}


def _answers(payload: bytes) -> int:
    """How many probabilities an app or a V1 answer carries (0 when it is not one)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return 0
    answers = body.get("predictions") if isinstance(body, dict) else None
    return len(answers) if isinstance(answers, list) else 0


def run(seconds: float, rate: float, batch_requests: int, batch_rate: float) -> dict:
    """Build the window, start the deployment, measure (a)-(d), stop and clean up."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    workdir = Path(tempfile.mkdtemp(prefix="bench-app-"))
    try:
        print("== data and feature stages on ten real days (Feast materialize)", file=sys.stderr)
        window = materialized_flight_window(workdir / "window")
        print("== champion served with enrichment, `e2eai app` in front", file=sys.stderr)
        deployment = start_app_deployment(window, workdir / "app")
        try:
            return measure(deployment, seconds, rate, batch_requests, batch_rate)
        finally:
            deployment.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(
    deployment: AppDeployment, seconds: float, rate: float, batch_requests: int,
    batch_rate: float,
) -> dict:  # fmt: skip
    """(b) router, (a) app, (c) batch through the app, then (d) the app's RSS."""
    router = serving_endpoint(deployment.settings)
    if router is None:
        raise SystemExit("the deployment has no router endpoint")
    flights = flight_requests(deployment.settings, hours=6)
    if len(flights) < BATCH:
        raise SystemExit(f"only {len(flights)} flights in the last hours; need {BATCH}")
    flight = flights[0]
    app_url = f"{deployment.url}/api/predictions"
    router_url = f"{router}/v1/models/{NAME}:explain"
    predict_url = f"{router}/v1/models/{NAME}:predict"
    single = json.dumps({"request": flight}).encode()
    direct = json.dumps({"instances": [flight]}).encode()
    batch = json.dumps({"requests": flights[:BATCH]}).encode()
    client_cpus = set(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {int(CLIENT_CORE)} & client_cpus or client_cpus)
    try:
        for url, body in ((predict_url, direct), (router_url, direct), (app_url, single)):
            paced(url, body, rate, 1.0)
        paced(app_url, batch, batch_rate, 1.0, expect=BATCH)
        print(f"== (b) router, one flight at {rate:g} req/s for {seconds:g} s", file=sys.stderr)
        routed = paced(router_url, direct, rate, seconds)
        predicted = paced(predict_url, direct, rate, seconds)
        print(f"== (a) app, one flight at {rate:g} req/s for {seconds:g} s", file=sys.stderr)
        app = with_app_cpu(deployment.app_pid, lambda: paced(app_url, single, rate, seconds))
        print(f"== (c) app, {BATCH} flights x {batch_requests}", file=sys.stderr)
        batched = with_app_cpu(
            deployment.app_pid,
            lambda: paced(app_url, batch, batch_rate, batch_requests / batch_rate, expect=BATCH),
        )
    finally:
        os.sched_setaffinity(0, client_cpus)
    rss = round(rss_mb(deployment.app_pid), 1)
    return {
        "rate_rps": rate,
        "seconds": seconds,
        "flight": flight,
        "load_average": os.getloadavg(),
        "app_single": app,
        "router_single": routed,
        "router_single_predict_only": predicted,
        "app_overhead_p50_ms": round(app["p50_ms"] - routed["p50_ms"], 3),
        "app_overhead_p99_ms": round(app["p99_ms"] - routed["p99_ms"], 3),
        "app_batch": {"rows": BATCH, "rate_rps": batch_rate, **batched},
        "app_rss_mb": rss,
        "targets": TARGETS,
        "met": {
            "single_p99_ms": app["p99_ms"] <= TARGETS["single_p99_ms"] and not app["errors"],
            "batch_p99_ms": batched["p99_ms"] <= TARGETS["batch_p99_ms"] and not batched["errors"],
            "rss_mb": rss <= TARGETS["rss_mb"],
        },
    }


def table(result: dict) -> str:
    rows = [
        ("(a) app, 1 flight", result["app_single"], TARGETS["single_p99_ms"]),
        ("(b) router, 1 flight", result["router_single"], None),
        (f"(c) app, {BATCH} flights", result["app_batch"], TARGETS["batch_p99_ms"]),
    ]
    lines = [
        f"{'path':<22} {'req':>5} {'err':>4} {'req/s':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'app CPU ms/req':>14}  target"
    ]
    for name, r, target in rows:
        goal = f"p99 ≤ {target:g}" if target else ""
        cpu = r.get("app_cpu_ms_per_request")
        lines.append(
            f"{name:<22} {r['requests']:>5} {r['errors']:>4} {r['achieved_rps']:>6} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {'' if cpu is None else cpu:>14}  {goal}"
        )
    lines.append(
        f"app overhead: p50 {result['app_overhead_p50_ms']:+.2f} ms, "
        f"p99 {result['app_overhead_p99_ms']:+.2f} ms; app RSS {result['app_rss_mb']} MB "
        f"(target ≤ {TARGETS['rss_mb']:g}); met: "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in result["met"].items())
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Duration of (a) and (b).")
    parser.add_argument("--rate", type=float, default=50.0, help="Rate of (a) and (b), req/s.")
    parser.add_argument("--batch-requests", type=int, default=100, help="Requests of (c).")
    parser.add_argument("--batch-rate", type=float, default=10.0, help="Rate of (c), req/s.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Write the results as JSON.")
    args = parser.parse_args()
    result = run(args.seconds, args.rate, args.batch_requests, args.batch_rate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
