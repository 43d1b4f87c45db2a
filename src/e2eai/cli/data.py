"""Ingest, validate, clean and featurise raw flight data."""

from __future__ import annotations

from typing import Annotated

import typer

from e2eai.cli.output import console, emit, user_errors

app = typer.Typer(no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


@app.command("prepare")
def prepare(
    source: Annotated[
        str | None,
        typer.Option(help="Flights CSV/Parquet path or s3:// URI (default: packaged data)."),
    ] = None,
    features: Annotated[
        bool, typer.Option(help="Also build the feature tables (the Feast sources).")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Ingest → snapshot → validate → clean → feature tables, with exact row accounting."""
    from e2eai.config import get_settings
    from e2eai.data.prepare import prepare_data
    from e2eai.features.build import build_feature_tables

    settings = get_settings()
    if source:
        settings = settings.model_copy(
            update={"data": settings.data.model_copy(update={"source": source})}
        )
    with user_errors():
        with console.status("ingest, validate, clean…"):
            prepared = prepare_data(settings)
        result = prepared.summary()
        if features:
            with console.status("feature tables…"):
                result["features"] = build_feature_tables(settings).summary()
    emit(result, as_json, "data prepared")
