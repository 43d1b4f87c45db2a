"""What the closed loop is judged against, on the very traffic it served.

- **static**: the first champion, never retrained;
- **scheduled**: a retrain at the start of every month (``replay.scheduled_every_months``)
  on the same sliding window the closed loop uses (``retraining.training_days``, the last
  ``training.holdout_days`` held out), deployed whenever it passes the baseline gate — the
  periodic retraining that drift-guided retraining should beat (or match with fewer
  retrains).

Both are scored on the model inputs the app logged with each served prediction (what the
served model saw after Feast enrichment, equal to the offline point-in-time rows, see
``tests/test_replay.py``), so the three models are compared on the same flights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e2eai.config import Settings
from e2eai.lifecycle.record import Progress

if TYPE_CHECKING:
    from e2eai.app.store import LoggedPrediction
    from e2eai.tasks import Task
    from e2eai.training.family import LoadedModel


@dataclass
class ScheduledModel:
    at: str  # serves flights from this instant on
    model_dir: Path | None  # None: the first champion
    training_window: list[str]
    passed: bool
    gates: list[str] = field(default_factory=list)
    seconds: float = 0.0


class ScheduledBaseline:
    """Monthly retrains, trained in this process in a home of their own (no registry and no
    serving of the deployment are touched)."""

    def __init__(self, settings: Settings, task: Task, home: Path, champion: int) -> None:
        self.settings = settings.model_copy(
            update={
                "home": home,
                "artifacts": settings.artifacts.model_copy(update={"uri": str(home / "a")}),
                "registry": settings.registry.model_copy(
                    update={"database_url": f"sqlite:///{home / 'registry.db'}"}
                ),
            }
        )
        self.task = task
        self.champion = champion
        self.models: list[ScheduledModel] = []
        self._frame: pd.DataFrame | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def models_file(self) -> Path:
        return self.settings.home / "models.json"

    def start(self, instants: list[datetime]) -> None:
        """Train the whole schedule in a background process, off the replay's critical path.

        Each retrain reads only data that had landed by its instant, whenever it runs; what
        it serves is decided afterwards, by instant (:meth:`serving_at`). One training
        worker: the replay's chain of processes leaves about one core idle.
        """
        from e2eai.serving.processes import settings_env

        home = self.settings.home
        home.mkdir(parents=True, exist_ok=True)
        self.models_file.unlink(missing_ok=True)
        training = self.settings.training.model_copy(update={"workers": 1})
        env = {
            **os.environ,
            **settings_env(self.settings.model_copy(update={"training": training})),
        }
        command = [sys.executable, "-m", "e2eai.lifecycle.baselines", str(self.champion)]
        command += [pd.Timestamp(at).isoformat() for at in instants]
        with (home / "train.log").open("ab") as log:
            self._process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def wait(self) -> None:
        """Wait for :meth:`start`'s schedule and read its models."""
        if self._process is not None:
            if self._process.wait() != 0:
                raise RuntimeError(
                    f"the scheduled baseline's retrains failed (exit {self._process.returncode})"
                    f": see {self.settings.home / 'train.log'}"
                )
            self._process = None
        models = json.loads(self.models_file.read_text()) if self.models_file.is_file() else []
        self.models = [
            ScheduledModel(**{**m, "model_dir": m["model_dir"] and Path(m["model_dir"])})
            for m in models
        ]

    def stop(self) -> None:
        """Stop a schedule still training (the replay failed)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def train_schedule(self, instants: list[datetime], progress: Progress) -> None:
        """Every retrain of the schedule, in order, each written to :attr:`models_file`."""
        for at in instants:
            self.retrain(at, progress)
            rows = [
                {**asdict(m), "model_dir": m.model_dir and str(m.model_dir)} for m in self.models
            ]
            self.models_file.write_text(json.dumps(rows, indent=2))

    def retrain(self, at: datetime, progress: Progress) -> ScheduledModel:
        """Train on the window that ends before ``at``; serve it from ``at`` if it passes."""
        from e2eai.lifecycle.closed_loop import retrain_settings
        from e2eai.training import run_training

        settings = retrain_settings(self.settings, at)
        t = settings.training
        began = time.perf_counter()
        frame = self._window(settings)
        result = run_training(settings, frame=frame, task=self.task)
        model = ScheduledModel(
            at=pd.Timestamp(at).isoformat(),
            model_dir=result.model_dir,
            training_window=[str(t.train_start), str(t.train_end)],
            passed=result.passed,
            gates=[g.message for g in result.gates],
            seconds=round(time.perf_counter() - began, 1),
        )
        self.models.append(model)
        verdict = "deployed" if model.passed else "kept the previous model (gates failed)"
        progress(f"  scheduled baseline retrain at {at:%Y-%m-%d}: {verdict}, {model.seconds:.0f} s")
        return model

    def _window(self, settings: Settings) -> pd.DataFrame:
        """The retrain's rows, cut from one point-in-time training set of the whole span."""
        from datetime import timedelta

        from e2eai.features.store import utc_day

        t = settings.training
        last = t.train_end + timedelta(days=t.holdout_days)
        if self._frame is None:
            self._frame = self.task.training_set(settings, t.train_start, self.settings.replay.end)
        ts = self._frame[self.task.timestamp]
        inside = (ts >= utc_day(t.train_start)) & (ts <= utc_day(last, end_of_day=True))
        return self._frame[inside].reset_index(drop=True)

    def serving_at(self, times: pd.Series) -> np.ndarray:
        """Index into ``self.models`` of the model serving each instant (-1: the champion)."""
        passed = [(pd.Timestamp(m.at), i) for i, m in enumerate(self.models) if m.passed]
        out = np.full(len(times), -1)
        stamps = pd.to_datetime(times, utc=True)
        for at, i in passed:
            out[(stamps >= at).to_numpy()] = i
        return out


def logged_inputs(log: list[LoggedPrediction], names: list[str]) -> pd.DataFrame:
    """The model inputs the app logged, as the frame the models score."""
    rows = [p.features or {} for p in log]
    return pd.DataFrame({n: [r.get(n) for r in rows] for n in names})


def load(model_dir: Path) -> LoadedModel:
    from e2eai.training.families import load_model

    return load_model(model_dir)


def baseline_probabilities(
    settings: Settings,
    task: Task,
    log: list[LoggedPrediction],
    scheduled: ScheduledBaseline,
    work: Path,
) -> dict[str, np.ndarray]:
    """P(positive) of the static and the scheduled baseline for every logged prediction."""
    from e2eai.registry import ModelRegistry
    from e2eai.training.champion import fetch_model_dir

    frame = logged_inputs(log, [f.name for f in task.features])
    with ModelRegistry.from_settings(settings) as registry:
        champion_dir = fetch_model_dir(registry, scheduled.champion, work / "static")
    static = load(champion_dir).predict_proba(frame)
    which = scheduled.serving_at(pd.Series([p.event_time for p in log]))
    scheduled_p = static.copy()
    for i, model in enumerate(scheduled.models):
        rows = which == i
        if rows.any() and model.model_dir is not None:
            scheduled_p[rows] = load(model.model_dir).predict_proba(frame[rows])
    return {"static": static, "scheduled": scheduled_p}


def summary(scheduled: ScheduledBaseline) -> list[dict[str, Any]]:
    return [
        {
            "at": m.at,
            "training_window": m.training_window,
            "passed": m.passed,
            "seconds": m.seconds,
            "gates": m.gates,
        }
        for m in scheduled.models
    ]


def schedule(settings: Settings, end: datetime) -> list[datetime]:
    """The scheduled baseline's retrain instants: the start of every
    ``replay.scheduled_every_months``-th month after the replay's start, up to ``end``."""
    every = settings.replay.scheduled_every_months
    at = pd.Period(settings.replay.start, "M")
    out = []
    while (start := pd.Timestamp((at := at + every).to_timestamp(), tz="UTC")) < end:
        out.append(start.to_pydatetime())
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m e2eai.lifecycle.baselines CHAMPION AT...``: the schedule of
    :meth:`ScheduledBaseline.start`, settings from the environment."""
    from e2eai.tasks import load_task

    args = sys.argv[1:] if argv is None else argv
    settings = Settings()
    baseline = ScheduledBaseline(settings, load_task(settings), settings.home, int(args[0]))
    instants = [pd.Timestamp(a).to_pydatetime() for a in args[1:]]
    baseline.train_schedule(instants, lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
