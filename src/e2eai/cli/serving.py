"""``e2eai serve``: the champion behind local serving (KServe ModelServer + router) on loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

if TYPE_CHECKING:
    from e2eai.config import Settings
    from e2eai.serving.rollout import ModelSource


def model_source(settings: Settings, version: int | None, onnx: Path | None) -> ModelSource:
    """A registry version, an ONNX file, or (neither given) the registry's champion."""
    from e2eai.errors import ServingError
    from e2eai.serving.rollout import ModelSource

    if version is not None and onnx is not None:
        raise ServingError("give --version or --onnx, not both")
    if onnx is not None:
        return ModelSource.from_path(onnx)
    if version is None:
        from e2eai.registry import ModelRegistry

        with ModelRegistry.from_settings(settings) as registry:
            champion = registry.champion(settings.serving.model_name)
        if champion is None:
            raise ServingError(
                f"the registry has no champion of {settings.serving.model_name!r}: "
                "pass --version or --onnx"
            )
        version = champion.version
    return ModelSource.from_registry(version)


def serve(
    version: Annotated[
        int | None, typer.Option(help="Registry version (default: champion).")
    ] = None,
    onnx: Annotated[Path | None, typer.Option(help="Serve this ONNX file instead.")] = None,
    port: Annotated[int | None, typer.Option(help="Router port (default: serving.port).")] = None,
    enrich: Annotated[
        bool, typer.Option(help="Accept flight requests: Feast enrichment in-process.")
    ] = False,
    foreground: Annotated[bool, typer.Option(help="Stay attached; Ctrl-C stops serving.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop local serving.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Serve a model locally (V1/V2 REST + gRPC) behind the canary router; print the endpoint."""
    from e2eai.config import get_settings
    from e2eai.serving.local import LocalServing

    settings = get_settings()
    manager = LocalServing(settings)
    with user_errors():
        if stop:
            manager.stop()
            emit({"stopped": True}, as_json, "Local serving stopped")
            return
        source = model_source(settings, version, onnx)
        console.print(f"starting model {source.version} …")
        state = manager.start(source, port=port, enrich=enrich)
    assert state.stable is not None
    emit(
        {
            "endpoint": state.endpoint,
            "model_name": state.model_name,
            "version": state.stable.version,
            "infer_url": f"{state.endpoint}/v2/models/{state.model_name}/infer",
            "grpc": f"127.0.0.1:{state.stable.grpc_port}",
        },
        as_json,
        f"Serving at {state.endpoint}",
    )
    if foreground:
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            manager.stop()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
