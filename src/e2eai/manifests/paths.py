"""Where the manifests, the CRDs and the tools are: found, never assumed to be on PATH."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from e2eai.errors import ManifestError

PROJECT_DIR_ENV = "E2EAI_PROJECT_DIR"
OVERLAYS = ("dev", "prod")
TOOLS_VENV = ".venv-tools"
"""checkov's own virtualenv (``make tools``): its pins clash with the main one's."""


def project_dir() -> Path:
    """The checkout holding ``manifests/``: ``$E2EAI_PROJECT_DIR``, the current directory, or
    the checkout this package was installed from (editable installs)."""
    candidates = []
    if os.environ.get(PROJECT_DIR_ENV):
        candidates.append(Path(os.environ[PROJECT_DIR_ENV]))
    candidates += [Path.cwd(), Path(__file__).resolve().parents[3]]
    for candidate in candidates:
        if (candidate / "manifests" / "overlays").is_dir():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise ManifestError(f"no manifests/overlays in {tried}; set {PROJECT_DIR_ENV}")


def manifests_dir(project: Path | None = None) -> Path:
    return (project or project_dir()) / "manifests"


def overlay_dir(overlay: str, project: Path | None = None) -> Path:
    """``manifests/overlays/<overlay>``, or a ManifestError naming the overlays there are."""
    path = manifests_dir(project) / "overlays" / overlay
    if not (path / "kustomization.yaml").is_file():
        known = sorted(p.name for p in path.parent.iterdir() if p.is_dir())
        raise ManifestError(f"overlay {overlay!r}: no {path}/kustomization.yaml; overlays: {known}")
    return path


def default_crds_dir(project: Path | None = None) -> Path:
    """The shared CRD folder beside the checkout (``../shared/crds``)."""
    return (project or project_dir()).parent / "shared" / "crds"


def venv_tool(name: str) -> Path:
    """A console script installed in this interpreter's virtualenv (kubectl, yamllint)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise ManifestError(
            f"{name} is not installed beside {sys.executable}; run `make install` "
            f"(it comes with the test dependencies)"
        )
    return path


def checkov_binary(project: Path | None = None) -> Path:
    """checkov from ``.venv-tools`` (``make tools``), else one on PATH."""
    local = (project or project_dir()) / TOOLS_VENV / "bin" / "checkov"
    if local.is_file():
        return local
    found = shutil.which("checkov")
    if found:
        return Path(found)
    raise ManifestError(f"checkov not found in {local} nor on PATH; run `make tools`")
