"""Submit a pipeline run to a Kubeflow Pipelines endpoint with ``kfp.Client``."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2eai.errors import PipelineError
from e2eai.pipeline.compile import compile_pipeline


@dataclass(frozen=True)
class SubmittedRun:
    """What the endpoint answered: the run's id and where to look at it."""

    run_id: str
    host: str
    experiment: str
    run_name: str
    url: str


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["k=v", …]`` → arguments; integers stay integers ("10" → 10), the rest are strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"--param {pair!r}: expected NAME=VALUE")
        text = value.strip()
        params[key.strip()] = int(text) if text.lstrip("-").isdigit() else text
    return params


def check_params(pipeline: Any, params: dict[str, Any]) -> None:
    """Refuse parameters the pipeline does not have, naming the ones it has."""
    known = set(pipeline.component_spec.inputs or {})
    unknown = sorted(set(params) - known)
    if unknown:
        raise PipelineError(f"unknown pipeline parameters {unknown}; it has {sorted(known)}")


def submit_pipeline(
    pipeline: Any,
    *,
    host: str,
    params: dict[str, Any],
    experiment: str = "e2eai",
    run_name: str | None = None,
    pipeline_root: str | None = None,
    client: Any = None,
    image: str | None = None,
) -> SubmittedRun:
    """Compile ``pipeline`` and create a run of it on the endpoint at ``host``.

    ``pipeline_root`` (e.g. ``s3://bucket/pipelines``) is where the cluster writes the run's
    artifacts; None keeps the endpoint's default. ``image`` is the image every step runs in
    (default: :func:`~e2eai.pipeline.images.component_image`).
    """
    import kfp

    if pipeline_root is not None and "://" not in pipeline_root:
        raise PipelineError(f"--pipeline-root {pipeline_root!r} must be a URI (s3://bucket/path)")
    check_params(pipeline, params)
    client = client or kfp.Client(host=host)
    name = run_name or f"{pipeline.name}-run"
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(pipeline, Path(tmp) / "pipeline.yaml", image=image)
        run = client.create_run_from_pipeline_package(
            str(package),
            arguments=params,
            run_name=name,
            experiment_name=experiment,
            pipeline_root=pipeline_root,
        )
    return SubmittedRun(
        run_id=run.run_id,
        host=host,
        experiment=experiment,
        run_name=name,
        url=f"{host.rstrip('/')}/#/runs/details/{run.run_id}",
    )
