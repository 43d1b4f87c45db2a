"""Compile a pipeline to the IR YAML that Kubeflow Pipelines (UI, API, kfp.Client) accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def compile_pipeline(pipeline: Any, output: Path) -> Path:
    """Write ``pipeline``'s IR YAML to ``output`` (parent folders created)."""
    from kfp import compiler

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(output))
    return output
