"""Serving benchmark (a script, not a test): the request path of four servers side by side.

(a) the e2eai predictor (kserve.ModelServer + fast V2 path), (b) stock kserve.ModelServer with
default settings and the same ONNX model, (c) a naive Flask + torch-eager app of the same
model under gunicorn, (d) bare FastAPI/uvicorn + ONNX Runtime (the floor).

Each server is pinned to core 0, the load generator (wrk; tritonclient.http for batches) to
core 1, everything on loopback. Reported: single-row V2 REST p50/p99 and throughput at a few
concurrencies, server CPU per request, RSS, and batch-256 rows/s (JSON and the V2 binary
tensor extension). Not yet measured here: the router hop of local serving.

With ``--feature-repo`` (a prepared Feast repo materialized through 31 Dec 2013), also the
Feast-enriched path: flight requests (schema.REQUEST_FIELDS) sent at a fixed rate (default
100 req/s, one at a time on a kept-alive connection, latency counted from each request's
scheduled send time so a slow response also delays the ones behind it), p50/p99 and server
CPU per request, for (e1) enrichment in the predictor process (``--enrich``: KServe's
in-process preprocess), (e2) the separate transformer process in front of a plain predictor
(one more loopback hop), and (e0) the plain predictor given model features (no Feast), plus
the saturated throughput of each with wrk.

    .venv/bin/python bench/bench_serving.py --seconds 3 --out runs/bench/serving.json
    .venv/bin/python bench/bench_serving.py --enrichment-only --feature-repo /tmp/e2h/repo \
        --rate 100 --paced-seconds 10
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the ONNX fixture generator lives with the tests

from e2eai.serving.processes import free_port, stop_process, wait_until_ready  # noqa: E402
from e2eai.tasks.flights import schema  # noqa: E402

NAME = "flight-delay"
PY = sys.executable
SERVER_CORE, CLIENT_CORE = "0", "1"


# -- the model: one ONNX file, and the same logistic model as torch-eager for (c) -------------


def build_models(workdir: Path) -> tuple[Path, Path]:
    """The ONNX model and the torch-eager parameters of the same fitted pipeline."""
    import joblib
    from onnx_fixtures import _expose_class1_probability, _pipeline, synthetic_features

    frame = synthetic_features(2000, seed=7)
    features = frame[[f.name for f in schema.model_features()]]
    pipeline = _pipeline().fit(features, frame[schema.LABEL].to_numpy())
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial = [
        (f.name, FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]))
        for f in schema.model_features()
    ]
    model = convert_sklearn(
        pipeline,
        initial_types=initial,
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    import onnx

    onnx_path = workdir / "model.onnx"
    onnx.save(_expose_class1_probability(model), str(onnx_path))
    columns = pipeline.named_steps["columns"]
    numeric = columns.named_transformers_["num"]
    imputer, scaler = numeric.steps[0][1], numeric.steps[1][1]
    encoder = columns.named_transformers_["cat"]
    linear = pipeline.named_steps["model"]
    params = {
        "numeric": schema.numeric_features(),
        "categorical": schema.categorical_features(),
        "fill": imputer.statistics_.tolist(),
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "categories": [list(map(str, c)) for c in encoder.categories_],
        "coef": linear.coef_[0].tolist(),
        "intercept": float(linear.intercept_[0]),
    }
    params_path = workdir / "torch_params.joblib"
    joblib.dump(params, params_path)
    return onnx_path, params_path


FLASK_APP = '''
"""(c) Naive Flask + torch-eager server of the same logistic model."""
import os
import joblib
import torch
from flask import Flask, jsonify, request

torch.set_num_threads(1)
P = joblib.load(os.environ["BENCH_PARAMS"])
N = len(P["numeric"])
FILL = torch.tensor(P["fill"]); MEAN = torch.tensor(P["mean"]); SCALE = torch.tensor(P["scale"])
W = torch.tensor(P["coef"]); B = torch.tensor(P["intercept"])
INDEX = [{c: i for i, c in enumerate(cats)} for cats in P["categories"]]
OFFSETS = [N]
for cats in P["categories"][:-1]:
    OFFSETS.append(OFFSETS[-1] + len(cats))

class Model(torch.nn.Module):
    def forward(self, numeric, onehot):
        numeric = torch.where(torch.isnan(numeric), FILL, numeric)
        x = torch.cat([(numeric - MEAN) / SCALE, onehot], dim=1)
        return torch.sigmoid(x @ W + B)

model = Model().eval()
app = Flask(__name__)

@app.post("/v2/models/flight-delay/infer")
def infer():
    body = request.get_json()
    cols = {t["name"]: [v[0] if isinstance(v, list) else v for v in t["data"]]
            for t in body["inputs"]}
    rows = len(next(iter(cols.values())))
    numeric = torch.tensor([[float("nan") if cols[n][r] is None else cols[n][r]
                             for n in P["numeric"]] for r in range(rows)])
    onehot = torch.zeros(rows, W.shape[0] - N)
    for j, name in enumerate(P["categorical"]):
        for r, value in enumerate(cols[name]):
            k = INDEX[j].get(value)
            if k is not None:
                onehot[r, OFFSETS[j] - N + k] = 1.0
    with torch.no_grad():
        p = model(numeric, onehot)
    return jsonify({"model_name": "flight-delay", "outputs": [
        {"name": "probability", "datatype": "FP32", "shape": [rows], "data": p.tolist()}]})
'''

FLOOR_APP = '''
"""(d) Bare FastAPI/uvicorn + ONNX Runtime: the floor (no validation, no framework extras)."""
import os
import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, Request, Response

o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
S = ort.InferenceSession(os.environ["BENCH_ONNX"], o, providers=["CPUExecutionProvider"])
app = FastAPI()

@app.post("/v2/models/flight-delay/infer")
async def infer(request: Request) -> Response:
    body = orjson.loads(await request.body())
    feed = {}
    for t in body["inputs"]:
        n = t["shape"][0]
        if t["datatype"] == "BYTES":
            feed[t["name"]] = np.array(t["data"], dtype=object).reshape(n, 1)
        else:
            feed[t["name"]] = np.array(t["data"], dtype=np.float32).reshape(n, 1)
    p = S.run(["probability"], feed)[0]
    return Response(orjson.dumps({"model_name": "flight-delay", "outputs": [
        {"name": "probability", "datatype": "FP32", "shape": [len(p)], "data": p}]},
        option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
'''


# -- servers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def server(kind: str, onnx_path: Path, params: Path, workdir: Path) -> Iterator[tuple[int, int]]:
    """Start one server pinned to the server core; yield (port, pid)."""
    port = free_port()
    env = {
        **os.environ,
        "BENCH_ONNX": str(onnx_path),
        "BENCH_PARAMS": str(params),
        "E2EAI_HOME": str(workdir / "home"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(workdir),
    }
    pin = ["taskset", "-c", SERVER_CORE]
    if kind in {"e2eai", "stock_kserve"}:
        cmd = [
            PY,
            "-m",
            "e2eai.serving.server",
            "--onnx",
            str(onnx_path),
            "--http-port",
            str(port),
            "--grpc-port",
            "0",
        ] + (["--stock"] if kind == "stock_kserve" else [])
        ready = f"http://127.0.0.1:{port}/v2/health/ready"
    elif kind == "flask_torch":
        cmd = [
            str(Path(PY).parent / "gunicorn"),
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "bench_flask_app:app",
        ]
        ready = None
    else:
        cmd = [
            PY,
            "-m",
            "uvicorn",
            "bench_floor_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ]
        ready = None
    log = (workdir / f"{kind}.log").open("wb")
    process = subprocess.Popen(
        pin + cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir
    )
    try:
        if ready:
            wait_until_ready(ready, process.pid, 90, workdir / f"{kind}.log")
        else:
            _wait_for_post(port, process.pid)
        yield port, process.pid
    finally:
        stop_process(process.pid, grace=5)
        log.close()


def _wait_for_post(port: int, pid: int) -> None:
    import httpx

    body = v2_body(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if (
                httpx.post(
                    f"http://127.0.0.1:{port}/v2/models/{NAME}/infer", json=body, timeout=2
                ).status_code
                == 200
            ):
                return
        time.sleep(0.2)
    raise RuntimeError(f"server pid {pid} on port {port} did not come up")


# -- load -------------------------------------------------------------------------------------


def v2_body(rows: int) -> dict:
    from onnx_fixtures import feature_rows

    data = feature_rows(rows, seed=5)
    return {
        "inputs": [
            {
                "name": f.name,
                "datatype": f.v2_datatype,
                "shape": [rows, 1],
                "data": [r[f.name] for r in data],
            }
            for f in schema.model_features()
        ]
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    total = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / ticks


def tree_cpu(pid: int) -> float:
    pids = [pid] + [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    return sum(cpu_seconds(p) for p in pids if Path(f"/proc/{p}").exists())


def rss_mb(pid: int) -> float:
    pids = [pid] + [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    total = 0
    for p in pids:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def wrk(port: int, body_file: Path, connections: int, seconds: float) -> dict:
    script = body_file.with_suffix(".lua")
    script.write_text(
        textwrap.dedent(f"""
        local f = io.open("{body_file}", "rb"); local body = f:read("*a"); f:close()
        wrk.method = "POST"; wrk.body = body
        wrk.headers["Content-Type"] = "application/json"
        done = function(summary, latency, requests)
          io.write(string.format("JSON p50=%d p99=%d n=%d err=%d\\n",
            latency:percentile(50), latency:percentile(99), summary.requests,
            summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout))
        end
    """)
    )
    out = subprocess.run(
        [
            "taskset",
            "-c",
            CLIENT_CORE,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/v2/models/{NAME}/infer",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"JSON p50=(\d+) p99=(\d+) n=(\d+) err=(\d+)", out)
    if not match:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    p50, p99, n, errors = map(int, match.groups())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"p50_ms": p50 / 1000, "p99_ms": p99 / 1000, "requests": n, "errors": errors, "rps": rps}


def batch_rows_per_second(port: int, seconds: float, binary: bool, rows: int = 256) -> float:
    """Rows/s of batch requests: JSON from httpx, V2 binary tensors from tritonclient.http.

    (tritonclient's JSON requests carry no Content-Type, which stock kserve refuses with 400,
    so the JSON case uses a plain HTTP client for every server.)
    """
    if not binary:
        return _json_batch_rows_per_second(port, seconds, rows)
    import tritonclient.http as triton
    from onnx_fixtures import feature_rows

    data = feature_rows(rows, seed=9)
    client = triton.InferenceServerClient(
        f"127.0.0.1:{port}", connection_timeout=30, network_timeout=30
    )
    inputs = []
    for f in schema.model_features():
        values = [r[f.name] for r in data]
        if f.kind == "numeric":
            array = np.array(
                [np.nan if v is None else v for v in values], dtype=np.float32
            ).reshape(-1, 1)
        else:
            array = np.array([v.encode() for v in values], dtype=object).reshape(-1, 1)
        tensor = triton.InferInput(f.name, list(array.shape), f.v2_datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput("probability", binary_data=binary)]
    done = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            result = client.infer(NAME, inputs, outputs=outputs)
            assert result.as_numpy("probability").shape[0] == rows
            done += rows
    finally:
        client.close()
    return done / (time.perf_counter() - start)


def _json_batch_rows_per_second(port: int, seconds: float, rows: int) -> float:
    import httpx

    body = json.dumps(v2_body(rows)).encode()
    done = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            response = client.post(
                f"/v2/models/{NAME}/infer",
                content=body,
                headers={"content-type": "application/json"},
            )
            response.raise_for_status()
            done += rows
    return done / (time.perf_counter() - start)


# -- the run ----------------------------------------------------------------------------------


def run(seconds: float, concurrencies: list[int], out: Path | None) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    (workdir / "bench_flask_app.py").write_text(FLASK_APP)
    (workdir / "bench_floor_app.py").write_text(FLOOR_APP)
    onnx_path, params = build_models(workdir)
    body_file = workdir / "single.json"
    body_file.write_text(json.dumps(v2_body(1)))
    results: dict = {"seconds_per_point": seconds, "servers": {}}
    for kind in ("e2eai", "stock_kserve", "flask_torch", "fastapi_ort_floor"):
        print(f"== {kind}", file=sys.stderr)
        with server(kind, onnx_path, params, workdir) as (port, pid):
            wrk(port, body_file, 4, 1.0)  # warm-up
            points = []
            for c in concurrencies:
                cpu_before = tree_cpu(pid)
                point = wrk(port, body_file, c, seconds)
                point["concurrency"] = c
                point["server_cpu_us_per_request"] = round(
                    (tree_cpu(pid) - cpu_before) / max(point["requests"], 1) * 1e6, 1
                )
                points.append(point)
                print(f"   c={c}: {point}", file=sys.stderr)
            entry = {
                "single_row": points,
                "rss_mb": round(rss_mb(pid), 1),
                "max_rps": max(p["rps"] for p in points),
            }
            entry["batch256_json_rows_s"] = round(batch_rows_per_second(port, seconds, False))
            if kind in {"e2eai", "stock_kserve"}:
                entry["batch256_binary_rows_s"] = round(batch_rows_per_second(port, seconds, True))
            print(
                f"   batch: {entry.get('batch256_json_rows_s')} json, "
                f"{entry.get('batch256_binary_rows_s')} binary rows/s; "
                f"RSS {entry['rss_mb']} MB",
                file=sys.stderr,
            )
            results["servers"][kind] = entry
    s = results["servers"]
    results["ratios"] = {
        "e2eai_vs_stock_kserve": round(s["e2eai"]["max_rps"] / s["stock_kserve"]["max_rps"], 2),
        "e2eai_vs_flask_torch": round(s["e2eai"]["max_rps"] / s["flask_torch"]["max_rps"], 2),
        "e2eai_vs_floor": round(s["e2eai"]["max_rps"] / s["fastapi_ort_floor"]["max_rps"], 2),
        "batch256_e2eai_best_vs_flask": round(
            max(s["e2eai"]["batch256_json_rows_s"], s["e2eai"]["batch256_binary_rows_s"])
            / s["flask_torch"]["batch256_json_rows_s"],
            2,
        ),
    }
    print(json.dumps(results["ratios"], indent=2), file=sys.stderr)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return results


# -- Feast enrichment in the path ---------------------------------------------------------------

ENRICH_DAY = "2013-12-31"


def flight_bodies(feature_repo: Path, count: int = 50) -> list[bytes]:
    """Single-flight V2 requests for the last flights of the materialized window."""
    from datetime import date

    from e2eai.config import Settings
    from e2eai.features.store import entity_frame
    from e2eai.tasks.flights.feature_tables import flights_as_requests
    from e2eai.tasks.flights.model_input import departure_time_zones

    day = date.fromisoformat(ENRICH_DAY)
    settings = Settings(home=feature_repo.parent, features={"repo": feature_repo})
    requests = flights_as_requests(entity_frame(settings, day, day).tail(count))
    zones = departure_time_zones(requests["origin"])
    types = {"str": "BYTES", "datetime": "BYTES", "int": "INT64", "float": "FP32"}
    bodies = []
    for (_, row), zone in zip(requests.iterrows(), zones, strict=True):
        values = {
            **row.to_dict(),
            "flight": int(row["flight"]),
            "distance": float(row["distance"]),
            "scheduled_departure": row["scheduled_departure"].tz_convert(zone).isoformat(),
        }
        inputs = [
            {"name": f.name, "datatype": types[f.type], "shape": [1, 1], "data": [values[f.name]]}
            for f in schema.REQUEST_FIELDS
        ]
        bodies.append(json.dumps({"inputs": inputs}).encode())
    return bodies


@contextlib.contextmanager
def enriched_server(
    kind: str, onnx_path: Path, feature_repo: Path, workdir: Path
) -> Iterator[tuple[int, list[int]]]:
    """Start (e0) plain, (e1) in-process enrichment or (e2) transformer + predictor on core 0.

    Yields the port clients talk to and the pids whose CPU counts as server CPU.
    """
    env = {
        **os.environ,
        "E2EAI_HOME": str(workdir / "home"),
        "E2EAI_FEATURES__REPO": str(feature_repo.resolve()),
        "E2EAI_SERVING__MODEL_NAME": NAME,
        "OMP_NUM_THREADS": "1",
    }
    pin = ["taskset", "-c", SERVER_CORE]
    started: list[subprocess.Popen] = []

    def start(cmd: list[str], name: str, port: int) -> None:
        log = (workdir / f"{name}.log").open("wb")
        started.append(subprocess.Popen(pin + cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
        ready = f"http://127.0.0.1:{port}/v2/health/ready"
        wait_until_ready(ready, started[-1].pid, 120, workdir / f"{name}.log")

    predictor_port = free_port()
    predictor = [PY, "-m", "e2eai.serving.server", "--onnx", str(onnx_path)]
    predictor += ["--http-port", str(predictor_port), "--grpc-port", "0"]
    try:
        start(predictor + (["--enrich"] if kind == "in_process" else []), kind, predictor_port)
        port = predictor_port
        if kind == "separate_transformer":
            port = free_port()
            transformer = [PY, "-m", "e2eai.serving.transformer", "--http-port", str(port)]
            transformer += ["--predictor-host", f"127.0.0.1:{predictor_port}"]
            start(transformer, "transformer", port)
        yield port, [p.pid for p in started]
    finally:
        for process in reversed(started):
            stop_process(process.pid, grace=5)


def paced_latency(port: int, bodies: list[bytes], rate: float, seconds: float) -> dict:
    """Requests at a fixed rate, one connection; latency from each scheduled send time."""
    path = f"/v2/models/{NAME}/infer"
    headers = {"Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    interval = 1.0 / rate
    latencies, errors = [], 0
    start = time.perf_counter()
    for i in range(round(rate * seconds)):
        scheduled = start + i * interval
        wait = scheduled - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        connection.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
        response = connection.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - scheduled)
        if response.status != 200 or b'"probability"' not in payload:
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


def run_enrichment(
    onnx_path: Path, feature_repo: Path, workdir: Path, rate: float, paced_seconds: float,
    wrk_seconds: float,
) -> dict:  # fmt: skip
    """(e0) no Feast, (e1) in-process enrichment, (e2) separate transformer: paced and max."""
    flights = flight_bodies(feature_repo)
    features_body = json.dumps(v2_body(1)).encode()
    results: dict = {"rate_rps": rate, "paced_seconds": paced_seconds, "servers": {}}
    for kind in ("no_enrichment", "in_process", "separate_transformer"):
        print(f"== enrichment: {kind}", file=sys.stderr)
        bodies = [features_body] if kind == "no_enrichment" else flights
        with enriched_server(kind, onnx_path, feature_repo, workdir) as (port, pids):
            paced_latency(port, bodies, rate, 1.0)  # warm-up (registry, SQLite, caches)
            before = sum(tree_cpu(p) for p in pids)
            client_cpu = set(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {int(CLIENT_CORE)})
            try:
                paced = paced_latency(port, bodies, rate, paced_seconds)
            finally:
                os.sched_setaffinity(0, client_cpu)
            paced["server_cpu_us_per_request"] = round(
                (sum(tree_cpu(p) for p in pids) - before) / max(paced["requests"], 1) * 1e6, 1
            )
            body_file = workdir / f"{kind}.json"
            body_file.write_bytes(bodies[0])
            before = sum(tree_cpu(p) for p in pids)
            saturated = wrk(port, body_file, 8, wrk_seconds)
            saturated["server_cpu_us_per_request"] = round(
                (sum(tree_cpu(p) for p in pids) - before) / max(saturated["requests"], 1) * 1e6, 1
            )
            entry = {
                "paced": paced,
                "saturated_c8": saturated,
                "rss_mb": round(sum(rss_mb(p) for p in pids), 1),
            }
            print(f"   {entry}", file=sys.stderr)
            results["servers"][kind] = entry
    s = results["servers"]
    results["target_p99_ms"] = 10.0
    results["met"] = {
        kind: s[kind]["paced"]["p99_ms"] <= 10.0 and s[kind]["paced"]["errors"] == 0
        for kind in ("in_process", "separate_transformer")
    }
    results["extra_hop_cpu_us_per_request"] = round(
        s["separate_transformer"]["paced"]["server_cpu_us_per_request"]
        - s["in_process"]["paced"]["server_cpu_us_per_request"],
        1,
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="Duration of each point.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--out", type=Path, default=None, help="Write the results as JSON.")
    parser.add_argument(
        "--feature-repo",
        type=Path,
        default=None,
        help="Materialized Feast repo (through 31 Dec 2013): also bench the enriched path.",
    )
    parser.add_argument("--enrichment-only", action="store_true", help="Skip servers (a)-(d).")
    parser.add_argument("--rate", type=float, default=100.0, help="Paced request rate (req/s).")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.enrichment_only:
        if args.feature_repo is None:
            raise SystemExit("--enrichment-only needs --feature-repo")
        result = {}
    else:
        result = run(args.seconds, args.concurrency, None)
    if args.feature_repo is not None:
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not installed (apt-get install -y wrk)")
        workdir = Path(tempfile.mkdtemp(prefix="bench-serving-enriched-"))
        try:
            onnx_path, _ = build_models(workdir)
            result["enrichment"] = run_enrichment(
                onnx_path, args.feature_repo, workdir, args.rate, args.paced_seconds, args.seconds
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
