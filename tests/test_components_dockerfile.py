"""components/Dockerfile, what only the component image has to do (checked by construction: no
Docker engine here). What every image has to do is in tests/test_images.py."""

from __future__ import annotations

import re
from pathlib import Path

from test_images import DOCKERFILES, instructions, pip_installs, stages

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = DOCKERFILES["component"]


def test_torch_cpu_is_installed_alone_before_the_pins_and_the_package():
    installs = [" ".join(w) for stage in stages(DOCKERFILE) for w in pip_installs(stage)]
    torch_cpu = next(i for i, r in enumerate(installs) if "download.pytorch.org/whl/cpu" in r)
    pins = next(i for i, r in enumerate(installs) if "-r /tmp/requirements.txt" in r)
    package = next(i for i, r in enumerate(installs) if r.endswith("/src"))
    assert torch_cpu < pins < package
    assert "torch==2.13.0" in installs[torch_cpu]
    # The lock leaves torch out (installed on its own): a second torch pin there would clash.
    assert not re.search(r"^torch==", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    pinned = (ROOT / "images" / "component" / "requirements.txt").read_text()
    assert not re.search(r"^torch==", pinned, re.MULTILINE)


def test_components_and_pipelines_are_importable_in_the_image():
    runtime = stages(DOCKERFILE)[-1]
    env = " ".join(args for op, args in runtime if op == "ENV")
    assert "PYTHONPATH=/app" in env and "E2EAI_PROJECT_DIR=/app" in env
    copied = [args.split()[-1] for op, args in runtime if op == "COPY"]
    assert "/app/components" in copied and "/app/pipelines" in copied


def test_the_run_folders_belong_to_the_unprivileged_user():
    runtime = " ".join(args for op, args in stages(DOCKERFILE)[-1] if op == "RUN")
    assert "chown -R e2eai:e2eai /app/runs /app/feature_repo/data" in runtime
    env = " ".join(args for op, args in instructions(DOCKERFILE) if op == "ENV")
    assert "E2EAI_HOME=/app/runs" in env
