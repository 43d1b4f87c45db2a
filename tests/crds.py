"""The shared CRDs (../shared/crds beside the checkout) for offline validation in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2eai.crd_schema import crd_validator

CRDS = Path(__file__).resolve().parents[1].parent / "shared" / "crds"


def validator(filename: str) -> Any:
    """The CRD's validator, or a skip with the reason when the shared folder is absent."""
    path = CRDS / filename
    if not path.is_file():
        pytest.skip(f"CRD {path} not found: the shared CRD folder (../shared/crds) is absent")
    return crd_validator(path)
