"""``e2eai app``: the web application (backend API + frontend) on loopback (module named
web so that it does not shadow the CLI's ``app``)."""

from __future__ import annotations

from typing import Annotated

import typer

from e2eai.cli.output import console


def app_command(
    host: Annotated[str | None, typer.Option(help="Listen address (default: app.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: app.port).")] = None,
) -> None:
    """Serve the app (API, pages, /docs, /metrics); it calls the served model, never loads one."""
    import uvicorn

    from e2eai.app.api import create_app
    from e2eai.config import get_settings

    settings = get_settings()
    host = host or settings.app.host
    port = port if port is not None else settings.app.port
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    original = server.startup

    async def startup(*args, **kwargs):  # type: ignore[no-untyped-def]
        await original(*args, **kwargs)
        if server.started:
            console.print(f"app: http://{host}:{port}", highlight=False)

    server.startup = startup  # type: ignore[method-assign]
    server.run()


def register(app: typer.Typer) -> None:
    app.command("app")(app_command)
