"""Canary rollouts on local serving: deploy, analyse, promote, roll back, status."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

if TYPE_CHECKING:
    from e2eai.serving.local import LocalServing
    from e2eai.serving.rollout import RolloutStatus

app = typer.Typer(no_args_is_help=True)


def _manager() -> LocalServing:
    import getpass

    from e2eai.config import get_settings
    from e2eai.serving.local import LocalServing

    # The audit log and the registry record who asked: this account, through the CLI.
    return LocalServing(get_settings(), actor=f"{getpass.getuser()} (cli)")


def _summary(status: RolloutStatus) -> dict[str, Any]:
    return {
        "endpoint": status.endpoint,
        "stable": {"version": status.stable_version, "weight": status.stable_percent},
        "canary": None
        if status.canary_version is None
        else {"version": status.canary_version, "weight": status.canary_percent},
    }


@app.command()
def deploy(
    version: Annotated[int | None, typer.Option(help="Registry version to canary.")] = None,
    onnx: Annotated[Path | None, typer.Option(help="Canary this ONNX file instead.")] = None,
    canary: Annotated[int, typer.Option(help="Percent of traffic to the canary.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Start a model version as the canary with --canary percent of the traffic."""
    from e2eai.cli.serving import model_source
    from e2eai.config import get_settings
    from e2eai.errors import ServingError

    with user_errors():
        if version is None and onnx is None:
            raise ServingError("give --version (registry) or --onnx")
        status = _manager().deploy(model_source(get_settings(), version, onnx), canary)
    emit(_summary(status), as_json, "Canary deployed")


@app.command()
def promote(
    reason: Annotated[str, typer.Option(help="Why (recorded in the registry).")] = "manual",
    as_json: JsonOption = False,
) -> None:
    """Give the canary all traffic; drain and stop the old stable."""
    with user_errors():
        status = _manager().promote(reason=f"promoted by hand: {reason}")
    emit(_summary(status), as_json, "Canary promoted")


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded in the registry).")] = "manual",
    as_json: JsonOption = False,
) -> None:
    """Give stable all traffic back; drain and stop the canary."""
    with user_errors():
        status = _manager().rollback(reason=f"rolled back: {reason}")
    emit(_summary(status), as_json, "Canary rolled back")


@app.command()
def analyze(
    watch: Annotated[
        float, typer.Option(help="Repeat every N seconds until promoted or rolled back.")
    ] = 0.0,
    dry_run: Annotated[bool, typer.Option(help="Decide but do not act.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare canary with stable (error rate, latency, AUC/accuracy) and act on the result."""
    manager = _manager()
    with user_errors():
        while True:
            decision = manager.analyze(apply=not dry_run)
            console.print(f"{decision.action}: {decision.reason}")
            if watch <= 0 or decision.action in {"promote", "rollback"} or dry_run:
                break
            time.sleep(watch)
    emit(decision.model_dump(mode="json"), as_json, f"Decision: {decision.action}")


@app.command()
def status(as_json: JsonOption = False) -> None:
    """What serves where, the traffic split, health, and the latest canary decisions.

    Exits 1 when a backend is down (the deployment is degraded), 0 when all are healthy.
    """
    with user_errors():
        result = _manager().describe()
    degraded = any(not b["healthy"] for b in result["router"]["backends"])
    if as_json:
        emit(result, True)
        if degraded:
            raise typer.Exit(1)
        return
    console.print(f"[bold]endpoint[/] {result['endpoint']}")
    for backend in result["router"]["backends"]:
        health = "[green]healthy[/]" if backend["healthy"] else "[red]down[/]"
        console.print(
            f"  {backend['slot']:<7} v{backend['version']:<10} "
            f"{backend['weight']:>3}%  {health}  {backend['url']}"
        )
    for decision in result["decisions"][-5:]:
        console.print(
            f"  {decision['decided_at'][:19]} {decision['action']:<8} "
            f"{decision['weight_before']}%→{decision['weight_after']}%  "
            f"{decision['reason']}"
        )
    if degraded:
        raise typer.Exit(1)


@app.command()
def audit(
    limit: Annotated[int, typer.Option(help="The last N records.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Who changed the deployment, what, why, and whether it happened (done/refused/failed)."""
    records = _manager().audit(limit)
    if as_json:
        emit(records, True)
        return
    for r in records:
        console.print(
            f"{r['at'][:19]} {r['outcome']:<8} {r['action']:<18} {r.get('actor', '?'):<22} "
            f"{r.get('reason', '')}" + (f"  [red]{r['error']}[/]" if r.get("error") else "")
        )
