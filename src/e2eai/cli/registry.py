"""Model registry: list, inspect, promote and verify model versions and their artifacts.

The registry and its database are opened from the settings (``E2EAI_REGISTRY__DATABASE_URL``,
``E2EAI_ARTIFACTS__URI``); the registry modules are imported inside the commands so that
``e2eai --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

if TYPE_CHECKING:
    from e2eai.registry import ModelRegistry, ModelVersion

app = typer.Typer(no_args_is_help=True)

VersionArgument = Annotated[int, typer.Argument(help="Model version number.", min=1)]


def _open_registry() -> ModelRegistry:
    from e2eai.config import get_settings
    from e2eai.registry import ModelRegistry

    return ModelRegistry.from_settings(get_settings())


def _as_json(model_version: ModelVersion) -> dict[str, Any]:
    return model_version.model_dump(mode="json")


def _headline_metric(metrics: dict[str, Any]) -> str:
    for name in ("roc_auc", "auc"):
        if isinstance(metrics.get(name), int | float):
            return f"{name}={metrics[name]:.4f}"
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))[:40]


@app.command("list")
def list_versions(
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only this model.")] = None,
    stage: Annotated[str | None, typer.Option("--stage", "-s", help="Only this stage.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List model versions with stage, metrics and lineage (oldest first)."""
    with user_errors():
        from e2eai.registry.stages import parse_stage

        wanted = parse_stage(stage) if stage is not None else None
        with _open_registry() as registry:
            versions = [v for v in registry.list(name) if wanted is None or v.stage == wanted]
    if as_json:
        emit({"count": len(versions), "versions": [_as_json(v) for v in versions]}, True)
        return
    from rich.table import Table

    table = Table(title=f"{len(versions)} model version(s)")
    for column in ("version", "name", "family", "stage", "metric", "code", "parent", "created"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            str(v.version),
            v.name,
            v.family,
            v.stage.value,
            _headline_metric(v.metrics),
            v.lineage.code_version[:12],
            "" if v.lineage.parent_version is None else str(v.lineage.parent_version),
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@app.command()
def show(version: VersionArgument, as_json: JsonOption = False) -> None:
    """Show one version: metrics, params, lineage, artifacts and stage history."""
    with user_errors(), _open_registry() as registry:
        model_version = registry.get(version)
    emit(_as_json(model_version), as_json, title=f"{model_version.label}")


@app.command()
def transition(
    version: VersionArgument,
    stage: Annotated[str, typer.Argument(help="canary, champion, archived or rejected.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (recorded).")],
    as_json: JsonOption = False,
) -> None:
    """Move a version to another stage; a new champion archives the previous one."""
    with user_errors(), _open_registry() as registry:
        before = registry.get(version)
        previous = registry.champion(before.name)
        after = registry.transition(version, stage, reason)
        superseded = (
            previous.version
            if previous is not None and previous.version != version and after.stage == "champion"
            else None
        )
    result = {**_as_json(after), "previous_stage": before.stage.value, "archived": superseded}
    emit(result, as_json, title=f"{after.label}: {before.stage.value} → {after.stage.value}")


@app.command()
def promote(
    version: VersionArgument,
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (recorded).")
    ] = "promoted with `e2eai registry promote`",
    as_json: JsonOption = False,
) -> None:
    """Make a version the champion of its model (the previous champion is archived)."""
    transition(version, "champion", reason, as_json)


@app.command()
def verify(
    version: Annotated[
        int | None, typer.Argument(help="Version to check (default: every version).", min=1)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-hash every artifact in the store against its recorded sha256 (exit 1 on a mismatch)."""
    with user_errors(), _open_registry() as registry:
        numbers = [version] if version is not None else [v.version for v in registry.list()]
        results = [registry.verify(number) for number in numbers]
    ok = all(result.ok for result in results)
    if as_json:
        emit({"ok": ok, "versions": [r.model_dump(mode="json") for r in results]}, True)
    else:
        for result in results:
            for check in result.artifacts:
                colour = "green" if check.status == "ok" else "red"
                detail = (
                    ""
                    if check.status == "ok"
                    else f" expected {check.expected_sha256}, found {check.actual_sha256}"
                )
                console.print(
                    f"{result.name} v{result.version} {check.name}: "
                    f"[{colour}]{check.status}[/]{detail}"
                )
        console.print("[bold green]all artifacts intact[/]" if ok else "[bold red]FAILED[/]")
    if not ok:
        raise typer.Exit(code=1)
