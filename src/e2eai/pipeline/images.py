"""The one image every pipeline component runs in (built by ``components/Dockerfile``).

Its default is the ``pipeline.image`` setting's default (``e2eai.config.PipelineSettings``), the
single place the reference is written: the dev overlay's kustomize ``images:`` entry for
``COMPONENT_IMAGE_NAME`` names the same tag, and ``e2eai pipeline compile --image REF`` replaces
it in the compiled IR.
"""

from __future__ import annotations

import os
import re

from e2eai.config import PipelineSettings
from e2eai.errors import PipelineError

COMPONENT_IMAGE_NAME = "ghcr.io/e2eai/e2eai"
DEFAULT_COMPONENT_IMAGE: str = PipelineSettings.model_fields["image"].default
IMAGE_ENV = "E2EAI_PIPELINE__IMAGE"

# An image reference as the distribution spec writes it: [host[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"(?P<repository>(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)


def component_image() -> str:
    """``pipeline.image`` from the environment (E2EAI_PIPELINE__IMAGE), else the default.

    Read from the environment directly, not through Settings: components evaluate this at
    import time and must not fail on an unrelated bad setting.
    """
    return os.environ.get(IMAGE_ENV, "").strip() or DEFAULT_COMPONENT_IMAGE


def check_image_reference(reference: str) -> str:
    """``reference`` if it is an image reference with a tag or a digest, else PipelineError.

    Without either, Kubernetes pulls ``:latest`` (and re-pulls it on every pod), so two runs of
    the same compiled pipeline could run different code.
    """
    match = _REFERENCE.fullmatch(reference.strip())
    if match is None:
        raise PipelineError(
            f"--image {reference!r} is not an image reference (expected e.g. "
            f"{COMPONENT_IMAGE_NAME}:0.2.0 or {COMPONENT_IMAGE_NAME}@sha256:<64 hex>)"
        )
    if not (match["tag"] or match["digest"]) or match["tag"] == "latest":
        raise PipelineError(
            f"--image {reference!r} names no fixed version: give a tag other than latest "
            f"(e.g. {match['repository']}:0.2.0) or a digest (@sha256:…)"
        )
    return reference.strip()


COMPONENT_IMAGE = component_image()
"""Resolved when ``components`` are imported, i.e. when a pipeline is defined or compiled."""
