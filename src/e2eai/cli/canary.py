"""Canary analysis offline: simulated rollouts measure each analysis's error rates."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from e2eai.cli.output import JsonOption, console, emit

app = typer.Typer(no_args_is_help=True)


def _steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"expected percents like 10,50,100, got {text!r}") from exc
    if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(steps):
        raise typer.BadParameter("expected increasing percents in (0, 100], like 10,50,100")
    return steps


@app.command()
def simulate(
    runs: Annotated[int, typer.Option(min=1, help="Rollouts per scenario and analysis.")] = 200,
    positive_rate: Annotated[
        float, typer.Option(min=0.001, max=0.999, help="Share of positive labels.")
    ] = 0.2,
    steps: Annotated[str, typer.Option(help="Canary traffic plan in percent.")] = "10,50,100",
    look_every: Annotated[int, typer.Option(min=1, help="Requests between two looks.")] = 250,
    max_requests: Annotated[int, typer.Option(min=1, help="A rollout's request budget.")] = 13_000,
    correlation: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Correlation of the two models' scores.")
    ] = 0.9,
    analysis: Annotated[
        list[str] | None,
        typer.Option(help="fixed and/or sequential (default: both, side by side)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Simulate rollouts (identical; canary worse by 0.01/0.03/0.06; better by 0.02) through
    the real decision function: promote / rollback / undecided rates and requests needed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from e2eai.config import get_settings
    from e2eai.serving.canary_analysis import CanaryPolicy
    from e2eai.serving.canary_simulation import SCENARIOS, SimulationSettings, simulate_all

    analyses = tuple(analysis or ("fixed", "sequential"))
    unknown = sorted(set(analyses) - {"fixed", "sequential"})
    if unknown:
        raise typer.BadParameter(f"unknown analysis {unknown[0]!r}: fixed or sequential")
    settings = SimulationSettings(
        runs=runs,
        positive_rate=positive_rate,
        steps=_steps(steps),
        look_every=look_every,
        max_requests=max_requests,
        correlation=correlation,
        seed=seed,
    )
    base = CanaryPolicy.from_settings(get_settings())
    started = time.perf_counter()
    with Progress(
        "[bold]rollouts", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("", total=runs * len(SCENARIOS) * len(analyses))
        results = simulate_all(
            base, settings, analyses=analyses, progress=lambda n: bar.advance(task, n)
        )
    payload = {
        "settings": settings.model_dump(mode="json"),
        "policy": base.model_dump(mode="json"),
        "scenarios": [r.model_dump(mode="json") for r in results],
        "seconds": round(time.perf_counter() - started, 1),
    }
    if as_json:
        emit(payload, True)
        return
    from rich.table import Table

    table = Table(
        "scenario", "analysis", "promote", "rollback", "undecided", "median requests",
        title=f"{runs} rollouts each, a look every {look_every} requests, "
        f"up to {max_requests:,}",
    )  # fmt: skip
    for r in results:
        median = "-" if r.median_requests is None else f"{r.median_requests:,.0f}"
        table.add_row(
            r.name,
            r.analysis,
            f"{r.promote:.1%}",
            f"{r.rollback:.1%}",
            f"{r.undecided:.1%}",
            median,
        )
    console.print(table)
