"""The rendered overlays for the manifest tests: rendered once per session with the real
kustomize, and the shared CRD folder as a fixture (skipped with the reason when absent)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
from crds import CRDS

from e2eai.manifests.render import render_objects

PROJECT = Path(__file__).resolve().parents[1]
MANIFESTS = PROJECT / "manifests"
OVERLAYS = ("dev", "prod")


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(render_objects(MANIFESTS / "overlays" / overlay))


def find(overlay: str, kind: str, name: str | None = None) -> dict[str, Any]:
    """A deep copy of one rendered object, to spoil in a test."""
    for obj in rendered(overlay):
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name):
            return copy.deepcopy(obj)
    raise AssertionError(f"{overlay} renders no {kind} {name}")


@pytest.fixture(scope="module")
def crds() -> Path:
    if not CRDS.is_dir():
        pytest.skip(
            f"CRD folder {CRDS} not found: the shared CRD folder (../shared/crds) is absent"
        )
    return CRDS
