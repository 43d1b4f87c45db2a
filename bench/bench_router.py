"""Router benchmark (a script, not a test): what the local traffic router's hop costs.

One e2eai predictor (kserve.ModelServer + the synthetic ONNX model) behind the router of local
serving. The router is pinned to core 0; the predictor and the load generator (wrk, one
thread) share core 1, everything on loopback. For each concurrency, single-row V2 REST
requests are sent (a) to the predictor directly and (b) through the router; reported: p50/p99
latency and req/s of both, and the router's CPU per request (user + system time of the router
process over the run, divided by the requests it served). Target: ≤ 150 µs of router CPU per
request.

The predictor is the bottleneck there (it shares its core with wrk), so the router idles
between requests and pays for waking up on each (expensive on a small VM: a cross-core
wake-up costs more than the hop's own work). ``--backend stub`` puts a minimal aiohttp app
that answers a fixed V2 response behind the router instead: the router is then the
bottleneck, and its CPU per request is the hop's own cost.

    .venv/bin/python bench/bench_router.py --seconds 5 --out runs/bench/router.json
    .venv/bin/python bench/bench_router.py --backend stub
    .venv/bin/python bench/bench_router.py --router-script /tmp/router_before.py  # compare
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # bench_serving's load-generator helpers
sys.path.insert(0, str(BENCH.parent / "tests"))  # the ONNX fixture generator

from bench_serving import NAME, PY, cpu_seconds, v2_body, wrk  # noqa: E402

from e2eai.auth import TOKEN_ENV  # noqa: E402
from e2eai.serving.processes import free_port, stop_process, wait_until_ready  # noqa: E402
from e2eai.serving.state import Backend, ServingState, write_state  # noqa: E402

ROUTER_CORE, PREDICTOR_CORE = "0", "1"
TARGET_CPU_US = 150.0

STUB_PREDICTOR = '''
"""A predictor stub: a fixed V2 answer, as fast as aiohttp on uvloop answers."""
import sys
import uvloop
from aiohttp import web

ANSWER = (b'{"model_name":"flight-delay","model_version":"1","outputs":[{"name":"probability",'
          b'"shape":[1],"datatype":"FP32","data":[0.2839]}]}')

async def ready(_):
    return web.json_response({"ready": True})

async def infer(request):
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")

app = web.Application()
app.router.add_get("/v2/health/ready", ready)
app.router.add_post("/v2/models/flight-delay/infer", infer)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
'''


def _pin(core: str) -> list[str]:
    return ["taskset", "-c", core] if shutil.which("taskset") else []


@contextlib.contextmanager
def process(cmd: list[str], ready: str, log: Path, env: dict[str, str]) -> Iterator[int]:
    """Start ``cmd``, wait until ``ready`` answers 200; yield its pid, stop it afterwards."""
    with log.open("wb") as out:
        started = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_ready(ready, started.pid, 120, log)
        yield started.pid
    finally:
        stop_process(started.pid, grace=5)


def run(seconds: float, concurrencies: list[int], router_script: Path | None, backend: str) -> dict:
    from onnx_fixtures import build_onnx_model

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-router-"))
    env = {
        **os.environ,
        "E2EAI_HOME": str(workdir / "home"),
        "OMP_NUM_THREADS": "1",
        TOKEN_ENV: "bench-token",
    }
    onnx_path = workdir / "model.onnx"
    if backend == "predictor":
        build_onnx_model(onnx_path)
    body_file = workdir / "single.json"
    body_file.write_text(json.dumps(v2_body(1)))
    predictor_port, router_port = free_port(), free_port()
    if backend == "stub":
        (workdir / "stub_predictor.py").write_text(STUB_PREDICTOR)
        predictor = [PY, str(workdir / "stub_predictor.py"), str(predictor_port)]
    else:
        predictor = [PY, "-m", "e2eai.serving.server", "--onnx", str(onnx_path)]
        predictor += ["--served-name", NAME, "--model-version", "1"]
        predictor += ["--http-port", str(predictor_port), "--grpc-port", "0"]
    router_entry = [str(router_script)] if router_script else ["-m", "e2eai.serving.router"]
    state_file = workdir / "state.json"
    router = [PY, *router_entry, "--state", str(state_file), "--port", str(router_port)]
    results: dict = {
        "seconds_per_point": seconds,
        "router": str(router_script or "e2eai.serving.router"),
        "backend": backend,
        "target_router_cpu_us_per_request": TARGET_CPU_US,
        "points": [],
    }
    try:
        with process(
            _pin(PREDICTOR_CORE) + predictor,
            f"http://127.0.0.1:{predictor_port}/v2/health/ready",
            workdir / "predictor.log",
            env,
        ) as predictor_pid:
            write_state(
                state_file,
                ServingState(
                    model_name=NAME,
                    host="127.0.0.1",
                    router_port=router_port,
                    router_pid=0,
                    stable=Backend(
                        slot="stable",
                        version="1",
                        model_path=str(onnx_path),
                        http_port=predictor_port,
                        grpc_port=0,
                        pid=predictor_pid,
                        weight=100,
                    ),
                ),
            )
            with process(
                _pin(ROUTER_CORE) + router,
                f"http://127.0.0.1:{router_port}/router/status",
                workdir / "router.log",
                env,
            ) as router_pid:
                wrk(predictor_port, body_file, 4, 1.0)  # warm-up, both paths
                wrk(router_port, body_file, 4, 1.0)
                for c in concurrencies:
                    direct = wrk(predictor_port, body_file, c, seconds)
                    before = cpu_seconds(router_pid)
                    routed = wrk(router_port, body_file, c, seconds)
                    cpu_us = (cpu_seconds(router_pid) - before) / max(routed["requests"], 1) * 1e6
                    point = {
                        "concurrency": c,
                        "direct": direct,
                        "routed": routed,
                        "router_cpu_us_per_request": round(cpu_us, 1),
                        "added_p50_ms": round(routed["p50_ms"] - direct["p50_ms"], 3),
                        "added_p99_ms": round(routed["p99_ms"] - direct["p99_ms"], 3),
                    }
                    results["points"].append(point)
                    print(
                        f"c={c}: router {point['router_cpu_us_per_request']} µs CPU/req; "
                        f"p50 {direct['p50_ms']} → {routed['p50_ms']} ms, "
                        f"p99 {direct['p99_ms']} → {routed['p99_ms']} ms, "
                        f"{direct['rps']:.0f} → {routed['rps']:.0f} req/s, "
                        f"errors {routed['errors']}",
                        file=sys.stderr,
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    worst = max(p["router_cpu_us_per_request"] for p in results["points"])
    results["met"] = worst <= TARGET_CPU_US
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="Duration of each point.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--router-script",
        type=Path,
        default=None,
        help="Run this copy of router.py instead of e2eai.serving.router (to compare versions).",
    )
    parser.add_argument(
        "--backend",
        choices=["predictor", "stub"],
        default="predictor",
        help="The e2eai predictor, or a fixed-answer stub that leaves the router the bottleneck.",
    )
    parser.add_argument("--out", type=Path, default=None, help="Write the results as JSON.")
    args = parser.parse_args()
    result = run(args.seconds, args.concurrency, args.router_script, args.backend)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
