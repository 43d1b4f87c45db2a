"""Ingest, validate, clean and featurise the task's raw data."""

from __future__ import annotations

from typing import Annotated

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

app = typer.Typer(no_args_is_help=True)


@app.command("prepare")
def prepare(
    source: Annotated[
        str | None,
        typer.Option(
            help="Flights CSV/Parquet path or s3:// URI (flights task; default: packaged)."
        ),
    ] = None,
    features: Annotated[
        bool, typer.Option(help="Also build the feature tables (the Feast sources).")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Ingest → snapshot → validate → clean → feature tables, with exact row accounting."""
    from e2eai.config import get_settings
    from e2eai.tasks import load_task

    settings = get_settings()
    if source:
        settings = settings.model_copy(
            update={"data": settings.data.model_copy(update={"source": source})}
        )
    with user_errors():
        task = load_task(settings)
        with console.status(f"{task.name}: ingest, validate, clean…"):
            prepared = task.prepare_data(settings)
        result = {"task": task.name, **prepared.summary()}
        if features:
            with console.status("feature tables…"):
                result["features"] = task.build_feature_tables(settings).summary()
    emit(result, as_json, "data prepared")
