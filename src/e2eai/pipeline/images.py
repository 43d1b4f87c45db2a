"""The one image every pipeline component runs in (built by ``components/Dockerfile``)."""

from __future__ import annotations

import os

DEFAULT_COMPONENT_IMAGE = "ghcr.io/e2eai/e2eai:0.1.0"
IMAGE_ENV = "E2EAI_PIPELINE__IMAGE"


def component_image() -> str:
    """``pipeline.image`` from the environment (E2EAI_PIPELINE__IMAGE), else the default.

    Read from the environment directly, not through Settings: components evaluate this at
    import time and must not fail on an unrelated bad setting.
    """
    return os.environ.get(IMAGE_ENV, "").strip() or DEFAULT_COMPONENT_IMAGE


COMPONENT_IMAGE = component_image()
"""Resolved when ``components`` are imported, i.e. when a pipeline is defined or compiled."""
