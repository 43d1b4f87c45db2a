"""Compile a pipeline to the IR YAML that Kubeflow Pipelines (UI, API, kfp.Client) accepts.

The image the steps run in is set here, at compile time, not when ``components`` are imported:
the components keep the image they were defined with, and the compiled IR gets the one asked
for (``e2eai pipeline compile --image REF``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from e2eai.pipeline.images import IMAGE_ENV, check_image_reference, component_image


def compile_pipeline(pipeline: Any, output: Path, image: str | None = None) -> Path:
    """Write ``pipeline``'s IR YAML to ``output`` (parent folders created), every step in
    ``image`` (default: :func:`~e2eai.pipeline.images.component_image`)."""
    from kfp import compiler

    reference = check_image_reference(image or component_image())
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(output))
    set_executor_image(output, reference)
    return output


def set_executor_image(package: Path, image: str) -> None:
    """Make every container executor in the IR YAML at ``package`` run ``image``.

    Each container also gets ``E2EAI_PIPELINE__IMAGE=image``: the steps' settings then name
    the image they run in, and the training jobs a step starts on the cluster
    (``pipeline.image``) run the same code as the step. The file is rewritten the way kfp's
    compiler writes it (its header comments kept, documents dumped with sorted keys).
    """
    text = package.read_text()
    lines = text.splitlines(keepends=True)
    header_length = next((i for i, line in enumerate(lines) if not line.startswith("#")), 0)
    header = "".join(lines[:header_length])
    documents = list(yaml.safe_load_all("".join(lines[header_length:])))
    for executor in documents[0]["deploymentSpec"]["executors"].values():
        container = executor.get("container")
        if container is None:  # importers and resolvers run no image of ours
            continue
        container["image"] = image
        env = [e for e in container.get("env", []) if e.get("name") != IMAGE_ENV]
        container["env"] = [*env, {"name": IMAGE_ENV, "value": image}]
    with package.open("w") as handle:
        handle.write(header)
        yaml.dump_all(documents, handle, sort_keys=True)
