"""Feast feature store: apply the repo, materialize, training sets, online lookups."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

app = typer.Typer(no_args_is_help=True)

DateOption = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"])]


def _day(value: datetime | None, default: date) -> date:
    return value.date() if value else default


@app.command("build")
def build(as_json: JsonOption = False) -> None:
    """Write the feature views' Parquet sources from the prepared data."""
    from e2eai.config import get_settings
    from e2eai.tasks import load_task

    with user_errors():
        settings = get_settings()
        result = load_task(settings).build_feature_tables(settings).summary()
    emit(result, as_json, "feature tables written")


@app.command("apply")
def apply(as_json: JsonOption = False) -> None:
    """Register entities, feature views and the feature service (like `feast apply`)."""
    from dataclasses import asdict

    from e2eai.config import get_settings
    from e2eai.tasks import load_task

    with user_errors(), console.status("feast apply…"):
        settings = get_settings()
        result = asdict(load_task(settings).apply_features(settings))
    emit(result, as_json, "feature repo applied")


@app.command("materialize")
def materialize(
    start: DateOption = None, end: DateOption = None, as_json: JsonOption = False
) -> None:
    """Load the latest feature values of a window into the online store."""
    from dataclasses import asdict

    from e2eai.config import get_settings
    from e2eai.tasks import load_task

    settings = get_settings()
    with user_errors(), console.status("materializing…"):
        task = load_task(settings)
        first, last = task.materialize_window(settings)
        result = asdict(task.materialize(settings, _day(start, first), _day(end, last)))
    emit(result, as_json, "online store filled")


@app.command("training-set")
def training_set(
    output: Annotated[Path, typer.Option(help="Parquet file to write.")],
    start: DateOption = None,
    end: DateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point-in-time-correct training rows (of a window, for tasks with a timestamp)."""
    from e2eai.config import get_settings
    from e2eai.tasks import load_task

    settings = get_settings()
    with user_errors(), console.status("historical retrieval…"):
        task = load_task(settings)
        frame = task.training_set(
            settings,
            _day(start, settings.training.train_start),
            _day(end, settings.training.train_end),
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(output, index=False)
    emit(
        {
            "output": str(output),
            "rows": len(frame),
            "columns": len(frame.columns),
            "positive_rate": round(float(frame[task.label].mean()), 4),
        },
        as_json,
        "training set written",
    )


@app.command("online")
def online(
    carrier: Annotated[str, typer.Option()],
    flight: Annotated[int, typer.Option()],
    origin: Annotated[str, typer.Option()],
    dest: Annotated[str, typer.Option()],
    tailnum: Annotated[str, typer.Option()],
    departure: Annotated[str, typer.Option(help="Scheduled departure, ISO 8601.")],
    distance: Annotated[float, typer.Option()],
    as_json: JsonOption = False,
) -> None:
    """Online model input for one flight (flights task: Feast online store + request)."""
    import pandas as pd

    from e2eai.config import get_settings
    from e2eai.tasks.flights.model_input import SCHEDULED_DEPARTURE
    from e2eai.tasks.flights.store import online_model_input

    request = pd.DataFrame(
        [
            {
                "carrier": carrier,
                "flight": flight,
                "origin": origin,
                "dest": dest,
                "tailnum": tailnum,
                SCHEDULED_DEPARTURE: pd.Timestamp(departure, tz="UTC")
                if pd.Timestamp(departure).tzinfo is None
                else pd.Timestamp(departure),
                "distance": distance,
            }
        ]
    )
    with user_errors():
        row = online_model_input(get_settings(), request).iloc[0]
    emit(
        {
            k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v)
            for k, v in row.items()
        },
        as_json,
        "online features",
    )
