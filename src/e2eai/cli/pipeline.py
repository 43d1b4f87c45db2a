"""Kubeflow Pipelines: compile the training pipeline, run it locally, submit it to a cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

app = typer.Typer(no_args_is_help=True)

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project-dir", help="Folder with pipelines/ and components/ (default: found)."),
]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", help="Pipeline parameter NAME=VALUE (repeatable)."),
]


def _pipeline(project_dir: Path | None) -> Any:
    from e2eai.pipeline.loader import load_training_pipeline

    return load_training_pipeline(project_dir)


ImageOption = Annotated[
    str | None,
    typer.Option(
        "--image",
        metavar="REF",
        help="Image every step runs in, with a tag or digest (default: "
        "$E2EAI_PIPELINE__IMAGE, else the pipeline.image setting's default, "
        "ghcr.io/e2eai/e2eai:<version>, which the dev overlay names too).",
    ),
]


@app.command("compile")
def compile_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="IR YAML file to write.")],
    image: ImageOption = None,
    project_dir: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compile the training pipeline to IR YAML for Kubeflow Pipelines."""
    from e2eai.pipeline.compile import compile_pipeline
    from e2eai.pipeline.images import check_image_reference, component_image

    with user_errors():
        reference = check_image_reference(image or component_image())
        pipeline = _pipeline(project_dir)
        path = compile_pipeline(pipeline, output, image=reference)
    emit(
        {"pipeline": pipeline.name, "output": str(path), "image": reference},
        as_json,
        "pipeline compiled",
    )


@app.command()
def run(
    data_start: Annotated[str, typer.Option(help="First data day (YYYY-MM-DD).")] = "",
    data_end: Annotated[str, typer.Option(help="Last data day.")] = "",
    train_start: Annotated[str, typer.Option(help="First training day.")] = "",
    train_end: Annotated[str, typer.Option(help="Last training day (holdout follows).")] = "",
    family: Annotated[str, typer.Option(help="torch_mlp, hist_gb or logreg.")] = "",
    hpo_trials: Annotated[int, typer.Option(help="Optuna trials; 0 skips, -1 = setting.")] = -1,
    warm_start_version: Annotated[int, typer.Option(help="Version to fine-tune; 0 none.")] = 0,
    canary_percent: Annotated[int, typer.Option(min=1, max=100)] = 10,
    settings_json: Annotated[
        str, typer.Option(help='Settings overrides as JSON, e.g. \'{"training":{"epochs":2}}\'.')
    ] = "{}",
    project_dir: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the training pipeline on this machine with kfp.local (same components as a cluster).

    Prints status, the gate verdict and reasons, the registered model version, the deployment
    and where the reports are; exits 1 when the run failed.
    """
    from e2eai.pipeline.local_run import run_locally
    from e2eai.pipeline.run_settings import settings_from_json

    with user_errors():
        settings = settings_from_json(settings_json)
        pipeline = _pipeline(project_dir)
        arguments = {
            "data_start": data_start,
            "data_end": data_end,
            "train_start": train_start,
            "train_end": train_end,
            "family": family,
            "hpo_trials": hpo_trials,
            "warm_start_version": warm_start_version,
            "canary_percent": canary_percent,
            "settings_json": settings_json,
        }
        console.print(f"running {pipeline.name} locally under {settings.home / 'pipelines'}")
        result = run_locally(pipeline, arguments, settings)
    emit(result.summary(), as_json, f"pipeline {result.status}")
    if result.status != "succeeded":
        raise typer.Exit(code=1)


@app.command()
def submit(
    host: Annotated[str, typer.Option(help="Kubeflow Pipelines endpoint URL.")],
    pipeline_root: Annotated[
        str | None, typer.Option(help="Where the run's artifacts go (s3://bucket/path).")
    ] = None,
    experiment: Annotated[str, typer.Option(help="Experiment name.")] = "e2eai",
    run_name: Annotated[str | None, typer.Option(help="Run name.")] = None,
    param: Params = None,
    image: ImageOption = None,
    project_dir: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compile the training pipeline and start a run of it on a Kubeflow Pipelines endpoint."""
    import contextlib
    import sys
    from dataclasses import asdict

    from e2eai.pipeline.submit import parse_params, submit_pipeline

    # kfp.Client prints links on stdout, which belongs to the one JSON object.
    with user_errors(), contextlib.redirect_stdout(sys.stderr):
        params = parse_params(param or [])
        submitted = submit_pipeline(
            _pipeline(project_dir),
            host=host,
            params=params,
            experiment=experiment,
            run_name=run_name,
            pipeline_root=pipeline_root,
            image=image,
        )
    emit({**asdict(submitted), "params": json.loads(json.dumps(params))}, as_json, "run submitted")
