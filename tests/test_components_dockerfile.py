"""components/Dockerfile, checked by construction (no Docker engine here to build it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "components" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*(#[^\n]*\n\s*)*", " ", DOCKERFILE.read_text())
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1] if " " in line else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def test_base_image_and_non_root_user():
    steps = _instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [i for i, (op, _) in enumerate(steps) if op == "USER"]
    assert users and steps[users[-1]][1].split(":")[0] not in ("root", "0")
    # The image ends as that user: nothing after it runs or copies as root.
    assert all(op not in ("RUN", "COPY", "ADD") for op, _ in steps[users[-1] :])


def test_torch_cpu_is_installed_alone_before_the_lock_and_the_package():
    runs = [args for op, args in _instructions() if op == "RUN" and "pip install" in args]
    torch_cpu = next(i for i, r in enumerate(runs) if "download.pytorch.org/whl/cpu" in r)
    lock = next(i for i, r in enumerate(runs) if "requirements.lock" in r)
    package = next(i for i, r in enumerate(runs) if "--no-deps /app" in r)
    assert torch_cpu < lock < package
    assert "torch==2.13.0" in runs[torch_cpu] and "torch==2.13.0" in runs[lock]
    # The lock leaves torch out (installed on its own): a second torch pin there would clash.
    assert not re.search(r"^torch==", (ROOT / "requirements.lock").read_text(), re.MULTILINE)


def test_every_copied_source_exists_in_the_repository():
    for op, args in _instructions():
        if op != "COPY":
            continue
        *sources, _target = args.split()
        for source in sources:
            assert list(ROOT.glob(source)), f"COPY {source}: nothing in the repository matches"


def test_components_and_pipelines_are_importable_in_the_image():
    env = " ".join(args for op, args in _instructions() if op == "ENV")
    assert "PYTHONPATH=/app" in env and "E2EAI_PROJECT_DIR=/app" in env
    copied = [args.split()[-1] for op, args in _instructions() if op == "COPY"]
    assert "/app/components" in copied and "/app/pipelines" in copied
