"""``e2eai run``: the rest of the year replayed through the app, with the loop closed.

1. The champion trains on the days before the replay (the training pipeline, kfp.local)
   and is served behind the router and the app; serving enriches requests from its own
   Feast online store, filled only with values the replay clock has passed
   (:class:`~e2eai.features.online_feed.OnlineFeed`).
2. The clock walks the replay hour by hour: that hour's feature values go to the online
   store, its requests (request fields only) go to the app's HTTP API in batches of
   ``replay.batch_rows`` (one of every ``replay.latency_every_hours`` hours also sends one
   flight alone, for latency), and every outcome that became known by then goes back as
   feedback.
3. When a monitoring window has ended and its outcomes have had time to land, a monitoring
   pass reports it (Evidently drift, quality) and the retraining policy decides; every
   decision goes to the app's audit log. A retrain runs the training pipeline on the
   sliding window that ends at the trigger, warm-started from the champion; the gates judge
   it and a passing model goes to canary through the serving manager; the canary analysis,
   run every ``replay.canary_every_hours`` on the fed-back labels, promotes or rolls it
   back.
4. Meanwhile the same traffic is kept for two baselines (:mod:`e2eai.lifecycle.baselines`):
   the frozen first champion, and a retrain at the start of every month.

The clock is the replay's: it stands still while a model trains (serving keeps running).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e2eai.config import Settings
from e2eai.errors import ServingError
from e2eai.lifecycle.record import Progress, TrainFn
from e2eai.lifecycle.traffic import HourlyTraffic, Outcomes

if TYPE_CHECKING:
    import httpx

    from e2eai.app.store import AppStore
    from e2eai.features.online_feed import OnlineFeed
    from e2eai.lifecycle.footprint import TreeMemory
    from e2eai.serving.local import LocalServing
    from e2eai.tasks import Task

Bar = Callable[[int, str], None]
"""Advance the replay's progress bar by n hours with a status line."""


@dataclass
class Retrain:
    """One retrain of the closed loop, from its trigger to its canary's fate."""

    at: str
    reason: str
    window: str
    training_window: list[str]
    version: int | None = None
    outcome: str = "training"
    gates: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ReplayRecord:
    """What the replay did: enough for the summary, the JSON and the report."""

    run_dir: Path
    start: str = ""
    end: str = ""
    champion: int | None = None
    hours: int = 0
    requests: int = 0
    predictions: int = 0
    feedback: int = 0
    feature_rows_written: int = 0
    retrains: list[Retrain] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)  # retraining policy
    canary: list[dict[str, Any]] = field(default_factory=list)  # analyses that acted
    canary_looks: list[dict[str, Any]] = field(default_factory=list)  # every analysis
    canary_analyses: int = 0
    single_latency_ms: list[float] = field(default_factory=list)
    batch_latency_ms: list[float] = field(default_factory=list)
    batch_rows: list[int] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)  # monitoring summaries
    steps: dict[str, float] = field(default_factory=dict)
    serving: dict[str, Any] = field(default_factory=dict)
    memory: TreeMemory | None = None

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"


def _day_start(day: date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def champion_settings(settings: Settings) -> Settings:
    """Training settings of the first champion: the days before the replay, the last
    ``holdout_days`` of them held out."""
    t = settings.training
    train_end = settings.replay.start - timedelta(days=t.holdout_days + 1)
    training = t.model_copy(update={"train_end": train_end})
    return settings.model_copy(update={"training": training})


def retrain_settings(settings: Settings, at: datetime) -> Settings:
    """A retrain at ``at``: the sliding window of ``retraining.training_days`` that ends
    with the last day whose flights had all landed by then, its last days the holdout."""
    t = settings.training
    last_day = (pd.Timestamp(at) - pd.Timedelta(days=1)).date()
    train_end = last_day - timedelta(days=t.holdout_days)
    train_start = max(
        settings.data.start, train_end - timedelta(days=settings.retraining.training_days - 1)
    )
    training = t.model_copy(update={"train_start": train_start, "train_end": train_end})
    return settings.model_copy(update={"training": training})


def deployment_settings(settings: Settings, run_dir: Path, online: Path) -> Settings:
    """The replay's deployment: serving enriches from ``online``; the app database (unless
    one is configured) and monitoring's reports and state are the run's own."""
    update: dict[str, Any] = {
        "serving": settings.serving.model_copy(update={"feature_repo": online}),
        "monitoring": settings.monitoring.model_copy(update={"directory": run_dir / "monitoring"}),
    }
    if settings.app.database_url == f"sqlite:///{settings.home / 'app.db'}":
        url = f"sqlite:///{run_dir / 'app.db'}"
        update["app"] = settings.app.model_copy(update={"database_url": url})
    return settings.model_copy(update=update)


def replay_end(settings: Settings, weeks: int | None, until: date | None) -> date:
    """The last replayed day: ``until``, or ``weeks`` weeks after the start, or the end."""
    end = settings.replay.end
    if weeks is not None:
        end = min(end, settings.replay.start + timedelta(days=7 * weeks - 1))
    if until is not None:
        end = min(end, until)
    if end < settings.replay.start:
        raise ValueError(f"the replay would end ({end}) before it starts ({settings.replay.start})")
    return end


def run_replay(
    settings: Settings,
    train: TrainFn,
    *,
    weeks: int | None = None,
    until: date | None = None,
    progress: Progress = print,
    bar: Callable[[int], contextlib.AbstractContextManager[Bar]] | None = None,
) -> ReplayRecord:
    """Train, serve, replay and close the loop; returns the record (report written)."""
    from e2eai.lifecycle.footprint import TreeMemory

    with TreeMemory() as memory:
        return _run_replay(settings, train, weeks, until, progress, bar, memory)


def _run_replay(
    settings: Settings,
    train: TrainFn,
    weeks: int | None,
    until: date | None,
    progress: Progress,
    bar: Callable[[int], contextlib.AbstractContextManager[Bar]] | None,
    memory: TreeMemory,
) -> ReplayRecord:
    from e2eai.features.online_feed import OnlineFeed, serving_repo
    from e2eai.features.store import materialize_repo
    from e2eai.lifecycle.baselines import ScheduledBaseline, schedule
    from e2eai.lifecycle.replay_report import write_replay_report
    from e2eai.registry import ModelRegistry
    from e2eai.serving.canary_analysis import CanaryPolicy
    from e2eai.serving.local import LocalServing
    from e2eai.serving.rollout import ModelSource
    from e2eai.tasks import load_task

    started = time.perf_counter()
    task = load_task(settings)
    end = replay_end(settings, weeks, until)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = ReplayRecord(run_dir=settings.home / "replay" / stamp, memory=memory)
    record.run_dir.mkdir(parents=True, exist_ok=True)
    record.start, record.end = str(settings.replay.start), str(end)

    step = time.perf_counter()
    first = champion_settings(settings)
    progress(
        f"1/4 champion: data → Feast → train {first.training.family} on "
        f"{first.training.train_start}..{first.training.train_end} → gates → ONNX → register"
    )
    outcome = train(first, None)
    if outcome.version is None:
        raise ServingError("the first champion failed its gates: " + "; ".join(outcome.gates))
    record.champion = outcome.version
    with ModelRegistry.from_settings(settings) as registry:
        if str(registry.get(outcome.version).stage) != "champion":
            registry.transition(outcome.version, "champion", "first model: passed every gate")
    record.steps["champion"] = time.perf_counter() - step

    step = time.perf_counter()
    progress("2/4 serve: online store as of the replay start, predictors, router, app")
    online = serving_repo(settings.features.repo, record.run_dir / "online_repo")
    materialize_from, _ = task.materialize_window(settings)  # the task's earliest stamps
    materialize_repo(online, materialize_from, settings.replay.start - timedelta(days=1))
    served = deployment_settings(settings, record.run_dir, online)
    policy = CanaryPolicy.from_settings(served).model_copy(update={"require_labels": True})
    serving = LocalServing(served, policy=policy, actor="replay")
    traffic = HourlyTraffic(task.replay_traffic(settings, settings.replay.start, end))
    feed = OnlineFeed(online, _day_start(settings.replay.start))
    scheduled = ScheduledBaseline(settings, task, record.run_dir / "scheduled", outcome.version)
    instants = schedule(settings, _day_start(end + timedelta(days=1)).to_pydatetime())
    scheduled.start(instants)
    serving.start(ModelSource.from_registry(outcome.version), enrich=True)
    try:
        with _app(served, record.run_dir / "app.log") as app:
            record.steps["serve"] = time.perf_counter() - step
            step = time.perf_counter()
            progress(
                f"3/4 replay {settings.replay.start}..{end}: {len(traffic.frame):,} requests "
                f"in {len(traffic):,} hours through the app; feedback as flights land"
            )
            loop = _Loop(served, task, record, serving, app, feed, train, progress)
            with (bar or _no_bar)(len(traffic)) as advance:
                loop.run(traffic, advance)
            record.steps["replay"] = time.perf_counter() - step
            record.serving = serving.describe()
    except BaseException:
        scheduled.stop()
        raise
    finally:
        serving.stop()
    step = time.perf_counter()
    progress(f"4/4 baselines on the same traffic ({len(instants)} scheduled retrains), report")
    scheduled.wait()
    record.steps["baselines: waiting for the scheduled retrains"] = time.perf_counter() - step
    for model in scheduled.models:
        verdict = "deployed" if model.passed else "kept the previous model (gates failed)"
        progress(f"  scheduled retrain at {model.at[:10]}: {verdict}, {model.seconds:.0f} s")
    step = time.perf_counter()
    record.steps["baselines on the log, report"] = 0.0  # listed in summary.json's steps
    write_replay_report(served, task, record, scheduled, time.perf_counter() - started)
    record.steps["baselines on the log, report"] = time.perf_counter() - step
    return record


@contextlib.contextmanager
def _no_bar(total: int) -> Iterator[Bar]:
    yield lambda n, status: None


@dataclass
class _App:
    url: str
    headers: dict[str, str]
    client: httpx.Client


@contextlib.contextmanager
def _app(settings: Settings, log_path: Path) -> Iterator[_App]:
    """``e2eai app`` in a process of its own (as deployed), and a client for it."""
    import httpx

    from e2eai.auth import admin_token
    from e2eai.serving.processes import free_port, start_app, stop_process

    port = free_port()
    app_settings = settings.model_copy(
        update={"app": settings.app.model_copy(update={"port": port})}
    )
    pid = start_app(app_settings, log_path)
    try:
        headers = {"Authorization": f"Bearer {admin_token(settings)}"}
        url = f"http://{settings.app.host}:{port}"
        with httpx.Client(base_url=url, timeout=60.0) as client:
            yield _App(url, headers, client)
    finally:
        stop_process(pid, grace=5)


class _Loop:
    """The replay clock and everything that happens on it."""

    def __init__(
        self,
        settings: Settings,
        task: Task,
        record: ReplayRecord,
        serving: LocalServing,
        app: _App,
        feed: OnlineFeed,
        train: TrainFn,
        progress: Progress,
    ) -> None:
        from e2eai.app.store import AppStore
        from e2eai.monitoring.windows import window_of

        self.settings = settings
        self.task = task
        self.record = record
        self.serving = serving
        self.app = app
        self.feed = feed
        self.train = train
        self.progress = progress
        self.outcomes = Outcomes()
        self.store: AppStore = AppStore.from_settings(settings)
        self.fields = [f.name for f in task.request_fields]
        self.time_field = task.request_time_field
        self._window_of = window_of
        start = _day_start(settings.replay.start)
        self.next_monitor = self._monitor_time(start)
        self.last_retrain_at: datetime | None = None
        self.pending: Retrain | None = None

    def _monitor_time(self, at: pd.Timestamp) -> pd.Timestamp:
        _, window_end = self._window_of(at.to_pydatetime(), self.settings.monitoring)
        return pd.Timestamp(window_end) + pd.Timedelta(hours=self.settings.replay.label_wait_hours)

    def run(self, traffic: HourlyTraffic, advance: Bar) -> None:
        every = self.settings.replay.latency_every_hours
        # The hour's feedback (the app's work, over HTTP) overlaps the hour's feature writes
        # (this process's): both are done before the canary analysis and the predictions.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback")
        try:
            for n, hour in enumerate(traffic):
                self._events_until(hour.start)
                with self._timed("replay: feature writes ∥ feedback (wall)"):
                    feedback = pool.submit(self._timed_feedback, hour.start)
                    with self._timed("replay: online feature writes"):
                        self.record.feature_rows_written += self.feed.advance(hour.start)
                    feedback.result()
                looks = n % self.settings.replay.canary_every_hours == 0
                if looks and self.record.requests and self.pending is not None:
                    with self._timed("replay: canary analysis"):
                        self._analyse()
                with self._timed("replay: predictions"):
                    self._serve(hour.rows, single=n % every == 0)
                self.record.hours += 1
                advance(1, self._status(hour.start))
            last = pd.Timestamp(traffic.frame["label_time"].max())
            end = _day_start(pd.Timestamp(self.record.end).date() + timedelta(days=1))
            self._send_feedback(max(last, end))
            self._events_until(end + pd.Timedelta(hours=self.settings.replay.label_wait_hours))
        finally:
            pool.shutdown()
            self.store.close()
        if self.pending is not None:
            self.pending.outcome = "canary undecided when the replay ended"

    def _status(self, at: pd.Timestamp) -> str:
        champion = self.serving.state().stable
        canary = self.serving.state().canary
        parts = [f"{at:%Y-%m-%d %H:00}", f"v{champion.version if champion else '?'}"]
        if canary is not None:
            parts.append(f"canary v{canary.version} {canary.weight}%")
        return " · ".join(parts)

    # -- traffic -----------------------------------------------------------------------------

    def _serve(self, rows: pd.DataFrame, *, single: bool) -> None:
        columns = {name: rows[name].tolist() for name in self.fields}
        instances = [
            {name: _plain(columns[name][i]) for name in self.fields} for i in range(len(rows))
        ]
        ids: list[str] = []
        if single:
            ids += self._predict({"request": instances[0]}, single=True)
            instances = instances[1:]
        size = self.settings.replay.batch_rows
        for first in range(0, len(instances), size):
            ids += self._predict({"requests": instances[first : first + size]}, single=False)
        self.outcomes.add(rows["label_time"], ids, rows["label"])

    def _predict(self, body: dict[str, Any], *, single: bool) -> list[str]:
        began = time.perf_counter()
        response = self.app.client.post("/api/predictions", json=body)
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise ServingError(f"the app answered {response.status_code}: {response.text[:300]}")
        predictions = response.json()["predictions"]
        (self.record.single_latency_ms if single else self.record.batch_latency_ms).append(elapsed)
        if not single:
            self.record.batch_rows.append(len(predictions))
        self.record.requests += 1
        self.record.predictions += len(predictions)
        return [p["id"] for p in predictions]

    def _timed_feedback(self, until: pd.Timestamp) -> None:
        with self._timed("replay: feedback"):
            self._send_feedback(until)

    def _send_feedback(self, until: pd.Timestamp) -> None:
        due = self.outcomes.due(until)
        limit = self.settings.app.max_feedback_batch
        for offset in range(0, len(due), limit):
            chunk = due[offset : offset + limit]
            body = {
                "items": [{"prediction_id": pid, "label": label} for pid, label in chunk],
                "source": "replay",
            }
            response = self.app.client.post("/api/feedback", json=body, headers=self.app.headers)
            if response.status_code != 200:
                raise ServingError(f"feedback: the app answered {response.status_code}")
            self.record.feedback += response.json()["stored"]

    # -- monitoring, retraining, canary --------------------------------------------------------

    @contextlib.contextmanager
    def _timed(self, what: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            spent = self.record.steps.get(what, 0.0) + time.perf_counter() - began
            self.record.steps[what] = spent

    def _events_until(self, at: pd.Timestamp) -> None:
        """Every monitoring pass due at or before ``at``, after the feedback known by then."""
        while self.next_monitor <= at:
            self._send_feedback(self.next_monitor)
            self._monitor(self.next_monitor)
            self.next_monitor = self._monitor_time(self.next_monitor)

    def _monitor(self, at: pd.Timestamp) -> None:
        from e2eai.monitoring.monitor import monitor

        with self._timed("replay: monitoring"):
            result = monitor(self.settings, self.store)
        for window in result.windows:
            self.record.windows.append(window)
            self._decide(window, at.to_pydatetime())

    def _decide(self, window: dict[str, Any], at: datetime) -> None:
        from e2eai.monitoring.policy import decide, record_decision

        champion = _champion_state(self.settings, self.task, self.serving)
        decision = decide(
            window,
            champion,
            now=at,
            last_retrain_at=self.last_retrain_at,
            in_progress=self.pending is not None,
            settings=self.settings.retraining,
        )
        record_decision(self.store, decision, actor="replay")
        summary = decision.summary()
        self.record.decisions.append(summary)
        if not decision.retrain:
            return
        self._retrain(at, decision.reason or "policy", window["window"], stamp=summary["at"])

    def _retrain(self, at: datetime, reason: str, window: str, *, stamp: str) -> None:
        stable = self.serving.state().stable
        assert stable is not None and stable.registry_version is not None
        settings = retrain_settings(self.settings, at)
        t = settings.training
        retrain = Retrain(
            at=stamp,  # as the decision that triggered it writes it
            reason=reason,
            window=window,
            training_window=[str(t.train_start), str(t.train_end)],
        )
        self.record.retrains.append(retrain)
        self.last_retrain_at = at
        self.progress(
            f"  retrain ({reason}, window {window}): fine-tune v{stable.registry_version} on "
            f"{t.train_start}..{t.train_end}, holdout to {t.train_end + timedelta(t.holdout_days)}"
        )
        began = time.perf_counter()
        with self._timed("replay: closed-loop retrains"):
            outcome = self.train(settings, stable.registry_version)
        retrain.seconds = round(time.perf_counter() - began, 1)
        retrain.gates = list(outcome.gates)
        retrain.version = outcome.version
        if outcome.version is None:
            retrain.outcome = "failed its gates"
            self.store.add_audit(
                actor="replay",
                action="retrain",
                outcome="gates-failed",
                reason="; ".join(outcome.gates)[:500],
                detail={"retrain": retrain.__dict__},
            )
            return
        from e2eai.serving.rollout import ModelSource

        canary = self.serving.state().canary
        if canary is None:  # the pipeline's deploy step did it, unless it ran without serving
            self.serving.deploy(
                ModelSource.from_registry(outcome.version), self.settings.replay.canary_percent
            )
        retrain.outcome = "canary"
        self.pending = retrain
        self.store.add_audit(
            actor="replay",
            action="retrain",
            outcome="canary",
            reason=f"v{outcome.version} passed its gates and went to canary",
            detail={"retrain": retrain.__dict__},
        )

    def _analyse(self) -> None:
        decision = self.serving.analyze(apply=True)
        self.record.canary_analyses += 1
        entry = decision.model_dump(mode="json")
        self.record.canary_looks.append(entry)
        if decision.action == "hold":
            return
        entry["clock"] = str(self.feed.clock)
        self.record.canary.append(entry)
        if decision.action in ("promote", "rollback") and self.pending is not None:
            self.pending.outcome = "promoted" if decision.action == "promote" else "rolled back"
            self.progress(
                f"  canary v{decision.canary_version}: {self.pending.outcome} ({decision.reason})"
            )
            self.pending = None


def _plain(value: Any) -> Any:
    """A request field as JSON: timestamps as ISO strings, numpy scalars as Python's."""
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _champion_state(settings: Settings, task: Task, serving: LocalServing) -> Any:
    """What the policy knows of the serving champion (its registry version's state)."""
    from e2eai.monitoring.trigger import champion_state

    stable = serving.state().stable
    assert stable is not None and stable.registry_version is not None
    return champion_state(settings, task, stable.registry_version)
