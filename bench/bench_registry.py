"""Registry round trip: register a model file, then fetch it back with sha256 verification.

Backends: SQLite + local directory, and SQLite + S3 (moto's server on the loopback).
Run: .venv/bin/python bench/registry_roundtrip.py [--size-mb 8] [--repeats 5]
Prints one JSON object with median seconds per operation and backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from e2eai.registry import ModelRegistry
from e2eai.storage import LocalArtifactStore, S3ArtifactStore


def _time_roundtrip(registry: ModelRegistry, model: Path, work: Path, repeats: int) -> dict:
    register_s, fetch_s, verify_s = [], [], []
    for i in range(repeats):
        started = time.perf_counter()
        mv = registry.register(
            name="bench",
            family="hist_gb",
            artifacts={"model": model},
            metrics={"roc_auc": 0.7},
            params={},
            lineage={},
        )
        register_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        registry.fetch_artifact(mv.version, "model", work / f"fetch-{i}")
        fetch_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert registry.verify(mv.version).ok
        verify_s.append(time.perf_counter() - started)
    return {
        "register_s": statistics.median(register_s),
        "fetch_verified_s": statistics.median(fetch_s),
        "verify_s": statistics.median(verify_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    results: dict[str, dict] = {"size_mb": args.size_mb}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "model.bin"
        model.write_bytes(os.urandom(int(args.size_mb * 1024 * 1024)))

        with ModelRegistry(f"sqlite:///{work / 'local.db'}", LocalArtifactStore(work / "a")) as r:
            results["sqlite+local"] = _time_roundtrip(r, model, work, args.repeats)

        import boto3
        from moto.server import ThreadedMotoServer

        for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
            os.environ.setdefault(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                Bucket="bench"
            )
            store = S3ArtifactStore("bench", "artifacts", endpoint_url=endpoint)
            with ModelRegistry(f"sqlite:///{work / 's3.db'}", store) as r:
                results["sqlite+s3(moto)"] = _time_roundtrip(r, model, work, args.repeats)
        finally:
            server.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
