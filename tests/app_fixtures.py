"""A real app deployment for tests: a registry champion served with Feast enrichment behind
the router, and ``e2eai app`` in its own process in front of it.

``start_app_deployment(flight_window_run, home)`` uses the session's real ten-day Feast repo
(see conftest.py's ``flight_window_run``), so requests are real 2013 flights as clients
send them (local scheduled time with its offset). Stop it with ``deployment.stop()``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from onnx_fixtures import build_onnx_model

from e2eai.auth import admin_token
from e2eai.config import AppSettings, ServingSettings, Settings
from e2eai.registry import ModelRegistry
from e2eai.serving.local import LocalServing
from e2eai.serving.processes import free_port, start_app, stop_process
from e2eai.serving.rollout import ModelSource
from e2eai.tasks.flights import schema
from e2eai.tasks.flights.feature_tables import flights_as_requests
from e2eai.tasks.flights.model_input import departure_time_zones
from e2eai.tasks.flights.store import entity_frame

NAME = "flight-delay"


def flight_requests(settings: Settings, hours: int = 2) -> list[dict[str, Any]]:
    """Real flights of the last ``hours`` materialized hours, as a client sends them."""
    day = settings.data.end
    end = pd.Timestamp(day + timedelta(days=1), tz="UTC")
    flights = entity_frame(settings, day, day)
    flights = flights[flights[schema.EVENT_TIMESTAMP] >= end - pd.Timedelta(hours=hours)]
    requests = flights_as_requests(flights)
    zones = departure_time_zones(requests["origin"])
    out = []
    for (_, row), zone in zip(requests.iterrows(), zones, strict=True):
        out.append(
            {
                "carrier": row["carrier"],
                "flight": int(row["flight"]),
                "origin": row["origin"],
                "dest": row["dest"],
                "tailnum": row["tailnum"],
                "scheduled_departure": row["scheduled_departure"].tz_convert(zone).isoformat(),
                "distance": float(row["distance"]),
            }
        )
    return out


def explaining_model(flight_window_run: Any) -> Path:
    """A Wide & Deep model trained on the window's real flights, exported with contributions.

    Trained once per session (kept in the window's home): Jan 1–8 to train (the last two days
    validate), Jan 9–10 as the holdout the export checks parity on and centres on.
    """
    out = flight_window_run.settings.home / "explaining-model"
    onnx = out / "model.onnx"
    if onnx.is_file():
        return onnx
    from e2eai.config import ExportSettings
    from e2eai.export import export_model
    from e2eai.tasks import load_task
    from e2eai.training.families import family
    from e2eai.training.family import FitRequest
    from e2eai.training.split import time_split

    settings = flight_window_run.settings
    task = load_task(settings)
    split = time_split(flight_window_run.training, task, date(2013, 1, 1), date(2013, 1, 8), 2, 2)
    training = settings.training.model_copy(update={"epochs": 2, "workers": 1})
    request = FitRequest(task, split.train, split.validation, training, out / "work")
    fitted = family("torch_mlp").fit(request)
    export_model(fitted.model_dir, split.holdout, out, ExportSettings(quantize=False), task)
    split.train.to_parquet(out / "reference.parquet", index=False)  # what monitoring reads
    return onnx


def register_model(
    settings: Settings, onnx: Path, stage: str, tmp: Path, family: str = "logreg"
) -> int:
    metrics = tmp / f"metrics-{onnx.parent.name}-{onnx.stem}.json"
    metrics.write_text(json.dumps({"roc_auc": 0.76}))
    artifacts = {"model.onnx": onnx, "metrics.json": metrics}
    if (onnx.parent / "reference.parquet").is_file():
        artifacts["reference.parquet"] = onnx.parent / "reference.parquet"
    with ModelRegistry.from_settings(settings) as registry:
        return registry.register(
            name=NAME,
            family=family,
            artifacts=artifacts,
            metrics={"roc_auc": 0.76},
            params={},
            lineage={"feature_service": "flight_delay_v1"},
            stage=stage,
        ).version


@dataclass
class AppDeployment:
    """A served champion and the app in front of it."""

    settings: Settings
    url: str
    token: str
    manager: LocalServing
    requests: list[dict[str, Any]]
    versions: dict[str, int] = field(default_factory=dict)
    app_pid: int = 0
    log_path: Path | None = None

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        stop_process(self.app_pid, grace=5)
        self.manager.stop()


def start_app_deployment(flight_window_run: Any, home: Path, **app: Any) -> AppDeployment:
    """Champion v1 (Wide & Deep, explains) and candidate v2 (logistic regression, does not)
    served with enrichment; ``e2eai app`` in front."""
    base = flight_window_run.settings.model_dump(exclude={"home", "artifacts", "registry"})
    # Its own home: registry, artifacts, app database and serving state; the session's
    # Feast repo (materialized real flights) for enrichment.
    settings = Settings.model_validate(
        {
            **base,
            "home": home,
            "serving": ServingSettings(port=free_port(), model_name=NAME).model_dump(),
            "app": AppSettings(port=free_port(), **app).model_dump(),
        }
    )
    home.mkdir(parents=True, exist_ok=True)
    # The champion explains itself (Wide & Deep on real flights); the candidate, a logistic
    # regression on synthetic rows, does not: both kinds of answer reach the app.
    champion = register_model(
        settings, explaining_model(flight_window_run), "champion", home, "torch_mlp"
    )
    candidate = register_model(
        settings, build_onnx_model(home / "candidate.onnx", seed=21), "candidate", home
    )
    manager = LocalServing(settings, actor="tests")
    manager.start(ModelSource.from_registry(champion), enrich=True)
    deployment = AppDeployment(
        settings=settings,
        url=f"http://127.0.0.1:{settings.app.port}",
        token=admin_token(settings),
        manager=manager,
        requests=flight_requests(settings),
        versions={"champion": champion, "candidate": candidate},
    )
    log_path = home / "app.log"
    deployment.log_path = log_path
    try:
        deployment.app_pid = start_app(settings, log_path, ready_path="/healthz")
    except BaseException:
        deployment.stop()
        raise
    return deployment
