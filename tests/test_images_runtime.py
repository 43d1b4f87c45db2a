"""The predictor and app images' packages are enough, and torch is not among them: proven by
running each process with only its image's distributions importable.

No Docker engine here, so each process runs in this venv under an import blocker: a module
whose every providing distribution is outside ``images/<image>/requirements.txt`` (torch
included: no image but the component one lists it) fails to import, as it would in the image.
Then the predictor serves a real ONNX model and the app serves its pages against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from onnx_fixtures import build_onnx_model, v2_body

from e2eai.serving.processes import free_port

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[1]

# Runs ``module`` as __main__ (or imports ``modules``) with every distribution outside the
# allowed set unimportable; writes what was loaded and what was refused when asked to.
HARNESS = r"""
import importlib, importlib.metadata, json, os, runpy, sys, threading, time

allowed = set(json.loads(os.environ["IMAGE_DISTRIBUTIONS"]))
providers = importlib.metadata.packages_distributions()
refused = []

def canonical(name):
    return name.lower().replace("_", "-").replace(".", "-")

def importer():
    frame = sys._getframe(2)
    machinery = ("importlib", "<frozen")
    while frame and any(m in frame.f_code.co_filename for m in machinery):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "?") if frame else "?"

class OnlyTheImagesDistributions:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        owners = {canonical(d) for d in providers.get(top, ())}
        if owners and not owners & allowed:
            refused.append(f"{name} <- {importer()}")
            raise ModuleNotFoundError(f"No module named {name!r} (not in the image)", name=name)
        return None

sys.meta_path.insert(0, OnlyTheImagesDistributions())
report = os.environ["IMAGE_REPORT"]

def write_report():
    loaded = sorted({m.partition(".")[0] for m in list(sys.modules)})
    with open(report + ".tmp", "w") as f:
        json.dump({"loaded": loaded, "refused": sorted(set(refused))}, f)
    os.replace(report + ".tmp", report)

def report_when_asked():
    while not os.path.exists(report + ".ask"):
        time.sleep(0.05)
    write_report()

mode, *rest = sys.argv[1:]
if mode == "import":
    for module in rest:
        importlib.import_module(module)
    write_report()
else:
    threading.Thread(target=report_when_asked, daemon=True).start()
    sys.argv = rest
    runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
"""


def torch_attempts(imports: dict[str, list[str]], by: str = "") -> list[str]:
    """The refused imports of torch, as ``"torch… <- importing module"``, from ``by…`` only."""
    return [
        r for r in imports["refused"] if r.startswith("torch") and r.split(" <- ")[1].startswith(by)
    ]


def image_distributions(image: str) -> list[str]:
    """Canonical names of what the image installs (the project itself included)."""
    text = (ROOT / "images" / image / "requirements.txt").read_text()
    names = [line.split("==")[0] for line in text.splitlines() if "==" in line]
    return [n.lower().replace("_", "-").replace(".", "-") for n in names] + ["e2eai"]


def _environment(image: str, home: Path, report: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2EAI_")}
    return {
        **env,
        "IMAGE_DISTRIBUTIONS": json.dumps(image_distributions(image)),
        "IMAGE_REPORT": str(report),
        "E2EAI_HOME": str(home),
        **extra,
    }


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"exited with {process.returncode} before {url} answered:\n{log.read_text()}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer in {timeout} s:\n{log.read_text()}")


def _report(report: Path) -> dict[str, list[str]]:
    report.with_name(report.name + ".ask").touch()
    deadline = time.monotonic() + 10
    while not report.exists():
        assert time.monotonic() < deadline, "the process wrote no import report"
        time.sleep(0.05)
    return json.loads(report.read_text())


class Running:
    """One process started under the harness, stopped by its own pid when done."""

    def __init__(self, tmp: Path, image: str, args: list[str], **env: str) -> None:
        harness = tmp / "harness.py"
        harness.write_text(HARNESS)
        self.report = tmp / f"{image}-imports.json"
        self.log = tmp / f"{image}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(harness), "run", *args],
                env=_environment(image, tmp / "home", self.report, **env),
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def imports(self) -> dict[str, list[str]]:
        return _report(self.report)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Running]]:
    tmp = tmp_path_factory.mktemp("predictor-image")
    model = build_onnx_model(tmp / "model.onnx")
    port, grpc_port = free_port(), free_port()
    running = Running(
        tmp,
        "predictor",
        [
            *("e2eai.serving.server", "--onnx", str(model), "--served-name", "flight-delay"),
            *("--http-port", str(port), "--grpc-port", str(grpc_port)),
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/v2/health/ready", running.process, running.log)
        yield url, running
    finally:
        running.stop()


def test_the_predictor_serves_with_only_its_images_packages(predictor):
    url, running = predictor
    response = httpx.post(f"{url}/v2/models/flight-delay/infer", json=v2_body(), timeout=10)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert output["name"] == "probability" and 0.0 <= output["data"][0] <= 1.0
    imports = running.imports()
    assert "onnxruntime" in imports["loaded"] and "kserve" in imports["loaded"]
    assert "torch" not in imports["loaded"]
    # Nothing on the serving path even tries torch (an optional import would show here).
    assert not torch_attempts(imports), imports["refused"]


def test_the_transformer_and_feast_enrichment_import_with_only_the_predictors_packages(
    tmp_path,
):
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    report = tmp_path / "imports.json"
    modules = ["feast", "e2eai.serving.transformer", "e2eai.serving.enricher", "e2eai.tasks"]
    done = subprocess.run(
        [sys.executable, str(harness), "import", *modules],
        env=_environment("predictor", tmp_path / "home", report),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imports = json.loads(report.read_text())
    assert "feast" in imports["loaded"] and "torch" not in imports["loaded"]
    # Feast looks for torch optionally and copes; e2eai's own modules never look for it.
    assert not torch_attempts(imports, by="e2eai"), imports["refused"]


def test_the_app_serves_its_pages_with_only_its_images_packages(predictor, tmp_path):
    serving_url, _ = predictor
    port = free_port()
    app = Running(
        tmp_path,
        "app",
        ["e2eai.cli", "app", "--host", "127.0.0.1", "--port", str(port)],
        E2EAI_APP__SERVING_URL=serving_url,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/healthz", app.process, app.log)
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.json() == {"database": True, "serving": True}, ready.text
        for path in ("/", "/docs", "/api/task", "/api/models", "/api/rollout", "/metrics"):
            assert httpx.get(f"{url}{path}", timeout=10).status_code == 200, path
        assert httpx.get(f"{url}/api/monitoring/reports", timeout=10).status_code == 200
        imports = app.imports()
    finally:
        app.stop()
    assert {"fastapi", "sqlalchemy", "uvicorn"} <= set(imports["loaded"])
    # The app never loads a model: neither torch nor ONNX Runtime is in its image or its process.
    assert not {"torch", "onnxruntime"} & set(imports["loaded"])
    assert not torch_attempts(imports, by="e2eai"), imports["refused"]
