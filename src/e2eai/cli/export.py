"""Export a model to ONNX (``e2eai export``): parity-checked, optionally int8-quantised."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors


def export(
    version: Annotated[
        int | None,
        typer.Option("--version", min=1, help="Registered version (default: the newest)."),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            "--model-dir",
            help="Export a local training run's model directory "
            "instead of a registered version (not registered).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Export a model to ONNX with a parity check and an int8 decision.

    Converts the version (or --model-dir), checks max |p_onnx - p_model| on its holdout,
    quantises to int8 when that costs little AUC, and attaches model.onnx to the version.
    With export.prune (E2EAI_EXPORT__PRUNE=1) an image CNN is also pruned and fine-tuned,
    and the smallest of fp32 / int8 / pruned within its accuracy bound is served.
    """
    with user_errors():
        from e2eai.config import get_settings

        settings = get_settings()
        if model_dir is not None:
            from e2eai.export.registered import export_local

            result = export_local(settings, model_dir)
            model_version = None
        else:
            from e2eai.export.registered import export_registered

            model_version, result = export_registered(settings, version)
        console.print(f"exported {result.family} → {result.onnx_path}")
    emit({"model_version": model_version, **result.summary()}, as_json, title="exported")


def register(app: typer.Typer) -> None:
    """Add ``export`` as a top-level command."""
    app.command("export")(export)
