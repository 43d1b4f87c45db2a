"""The three Dockerfiles, checked by construction (no Docker engine here to build them).

Every image: a builder stage and a runtime stage from the same base pinned by tag and digest,
only exact pins from requirements.lock installed (nothing resolved at build time), compilers
in the builder only, a non-root uid 10001 at the end. The predictor and app images never
install torch. What each image's pins let its process do is proven by running it:
tests/test_images_runtime.py.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

from e2eai.serving.k8s_manifests import ClusterServing, serving_runtime

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = {
    "component": ROOT / "components" / "Dockerfile",
    "predictor": ROOT / "images" / "predictor" / "Dockerfile",
    "app": ROOT / "images" / "app" / "Dockerfile",
}
BASE = re.compile(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}")
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "-dev")
UID = "10001"


def _load_lock_subset():
    spec = importlib.util.spec_from_file_location("lock_subset", ROOT / "images" / "lock_subset.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock_subset = _load_lock_subset()
LOCK = lock_subset.read_lock()


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*(#[^\n]*\n\s*)*", " ", path.read_text())
    steps = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            op, _, args = line.partition(" ")
            steps.append((op.upper(), args.strip()))
    return steps


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each stage, each list starting with its FROM."""
    result: list[list[tuple[str, str]]] = []
    for step in instructions(path):
        if step[0] == "FROM":
            result.append([])
        result[-1].append(step)
    return result


def pip_installs(stage: list[tuple[str, str]]) -> list[list[str]]:
    """The arguments of every ``pip install`` in the stage's RUN instructions."""
    found = []
    for op, args in stage:
        if op != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"]:
                found.append(words[2:])
    return found


def _copied_file(stage: list[tuple[str, str]], container_path: str) -> Path:
    """The repository file that a COPY in this stage put at ``container_path``."""
    for op, args in stage:
        if op == "COPY" and not args.startswith("--from"):
            source, target = args.split()
            if target == container_path:
                return ROOT / source
    raise AssertionError(f"{container_path} is read by pip but no COPY in the stage puts it there")


def installed_requirements(image: str) -> list[str]:
    """Every requirement that the image's pip install steps name, requirement files expanded;
    local paths (the project built from source) as ``path:<dir>``."""
    named = []
    for stage in stages(DOCKERFILES[image]):
        for words in pip_installs(stage):
            assert "--no-deps" in words, f"{image}: pip install {words} would resolve versions"
            words = [w for w in words if w != "--no-deps"]
            skip_next = False
            for i, word in enumerate(words):
                if skip_next:
                    skip_next = False
                    continue
                if word in ("--index-url", "-c", "--constraint"):
                    skip_next = True
                elif word in ("-r", "--requirement"):
                    skip_next = True
                    requirement_file = _copied_file(stage, words[i + 1])
                    lines = requirement_file.read_text().splitlines()
                    named += [ln.strip() for ln in lines if ln.strip() and ln[0] != "#"]
                elif word.startswith("/") or word.startswith("."):
                    named.append(f"path:{word}")
                else:
                    assert not word.startswith("-"), f"{image}: unexpected pip option {word}"
                    named.append(word)
    return named


@pytest.mark.parametrize("image", DOCKERFILES)
def test_two_stages_from_one_base_pinned_by_tag_and_digest(image):
    froms = [stage[0][1] for stage in stages(DOCKERFILES[image])]
    assert len(froms) == 2, froms
    (builder_base, builder_alias), (runtime_base, runtime_alias) = (
        re.fullmatch(r"(\S+) AS (\S+)", f).groups() for f in froms
    )
    assert (builder_alias, runtime_alias) == ("builder", "runtime")
    assert BASE.fullmatch(builder_base) and builder_base == runtime_base
    # One base for every image: one digest to refresh, one set of OS packages to patch.
    assert builder_base == stages(DOCKERFILES["component"])[0][0][1].split()[0]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_compilers_stay_in_the_builder_and_the_runtime_copies_its_venv(image):
    builder, runtime = stages(DOCKERFILES[image])
    assert any("build-essential" in args for op, args in builder if op == "RUN")
    runtime_text = " ".join(f"{op} {args}" for op, args in runtime)
    for tool in BUILD_TOOLS:
        assert tool not in runtime_text, f"{image}: {tool} in the runtime stage"
    assert "apt-get install" not in runtime_text and not pip_installs(runtime)
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime
    env = " ".join(args for op, args in runtime if op == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env
    # The builder proves the pinned set complete before anything is copied out of it.
    last_install = max(i for i, (op, a) in enumerate(builder) if "pip install" in a)
    assert "pip check" in builder[last_install][1]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_ends_as_the_unprivileged_uid_10001(image):
    runtime = stages(DOCKERFILES[image])[-1]
    assert any(f"--uid {UID}" in args for op, args in runtime if op == "RUN")
    users = [i for i, (op, _) in enumerate(runtime) if op == "USER"]
    assert users and runtime[users[-1]][1] == f"{UID}:{UID}"
    # Nothing after it runs or copies as root.
    assert all(op not in ("RUN", "COPY", "ADD") for op, _ in runtime[users[-1] :])


@pytest.mark.parametrize("image", DOCKERFILES)
def test_installs_name_only_what_the_lock_pins(image):
    named = installed_requirements(image)
    assert len(named) > 20, named
    for requirement in named:
        if requirement.startswith("path:"):
            # The project itself, built from the source the stage copied there.
            assert requirement == "path:/src", requirement
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", requirement)
        assert match, f"{image}: {requirement!r} is not an exact pin"
        name, version = lock_subset.canonicalize_name(match[1]), match[2]
        if name == "torch":
            # Installed first and alone from the CPU index; the lock leaves it out on purpose.
            assert (image, version) == ("component", "2.13.0"), requirement
        elif name in lock_subset.UNFROZEN:
            # pip freeze never writes setuptools: held to the verified environment's version.
            assert version == importlib.metadata.version(name), requirement
        else:
            assert name in LOCK, f"{image}: {requirement} is not in requirements.lock"
            assert LOCK[name][1] == version, f"{image}: {requirement}, the lock pins {LOCK[name]}"


@pytest.mark.parametrize("image", ["predictor", "app"])
def test_serving_and_app_images_never_install_torch(image):
    names = {
        lock_subset.canonicalize_name(re.split(r"[=<>\[ ]", r, maxsplit=1)[0])
        for r in installed_requirements(image)
        if not r.startswith("path:")
    }
    assert "torch" not in names
    assert not any("download.pytorch.org" in args for _, args in instructions(DOCKERFILES[image]))
    # The serving image carries ONNX Runtime instead; the app loads no model at all.
    assert ("onnxruntime" in names) == (image == "predictor")


def test_component_image_installs_torch_cpu_alone_before_the_pins():
    installs = [w for stage in stages(DOCKERFILES["component"]) for w in pip_installs(stage)]
    torch_step = next(i for i, w in enumerate(installs) if "torch==2.13.0" in w)
    pins_step = next(i for i, w in enumerate(installs) if "-r" in w)
    assert torch_step < pins_step
    torch_words = installs[torch_step]
    assert (
        torch_words[torch_words.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    )
    assert [w for w in torch_words if "==" in w] == ["torch==2.13.0"]
    # What torch needs comes from the lock's pins (it is installed with --no-deps).
    pinned = {r.split("==")[0].lower() for r in installed_requirements("component") if "==" in r}
    assert {"sympy", "networkx", "filelock", "fsspec", "jinja2"} <= pinned


def test_requirement_files_are_the_current_closure_of_their_roots():
    """Each images/*/requirements.txt is what lock_subset computes from the lock now: a changed
    lock or root list without regenerating fails here (python images/lock_subset.py)."""
    for image in lock_subset.IMAGES:
        text = (ROOT / "images" / image / "requirements.txt").read_text()
        assert text == lock_subset.render(image, LOCK), f"{image}: stale, regenerate"


def test_closure_refuses_what_the_lock_does_not_pin():
    roots = lock_subset.read_roots("app")
    with pytest.raises(ValueError, match=r"is not in requirements\.lock"):
        lock_subset.closure(roots, {k: v for k, v in LOCK.items() if k != "starlette"})


def _dockerignored(path: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/")
        for p in patterns
        if not p.startswith("!")
    )


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_copied_source_exists_and_is_in_the_build_context(image):
    patterns = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for op, args in instructions(DOCKERFILES[image]):
        if op != "COPY" or args.startswith("--from"):
            continue
        *sources, _target = args.split()
        for source in sources:
            matches = list(ROOT.glob(source))
            assert matches, f"COPY {source}: nothing in the repository matches"
            for match in matches:
                relative = str(match.relative_to(ROOT))
                assert not _dockerignored(relative, patterns), f"{relative} is dockerignored"


def test_dockerignore_keeps_local_state_out_of_the_context():
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    for path in (".git", ".venv", "runs", "feature_repo/data", "tests", ".env"):
        assert _dockerignored(path, patterns), path


def test_predictor_image_runs_what_the_serving_runtime_runs():
    runtime = stages(DOCKERFILES["predictor"])[-1]
    steps = dict(runtime)
    container = serving_runtime(ClusterServing())["spec"]["containers"][0]
    assert json.loads(steps["ENTRYPOINT"]) == container["command"]
    cmd = json.loads(steps["CMD"])
    assert cmd[cmd.index("--onnx") + 1] == container["args"][container["args"].index("--onnx") + 1]
    port = cmd[cmd.index("--http-port") + 1]
    assert f"http://127.0.0.1:{port}/v2/health/ready" in steps["HEALTHCHECK"]
    assert port == str(container["ports"][0]["containerPort"])


def test_app_image_healthcheck_probes_the_port_it_listens_on():
    steps = dict(stages(DOCKERFILES["app"])[-1])
    assert json.loads(steps["ENTRYPOINT"]) == ["e2eai", "app"]
    cmd = json.loads(steps["CMD"])
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert f"http://127.0.0.1:{cmd[cmd.index('--port') + 1]}/healthz" in steps["HEALTHCHECK"]
