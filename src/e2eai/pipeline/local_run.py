"""Run a pipeline on this machine with ``kfp.local`` (SubprocessRunner, current venv).

Every task runs as its own Python process, exactly the component code a cluster runs, with
artifacts under ``settings.home/pipelines/<run>/``. The result gathers what people want to
know at the end: status, gate verdict and reasons, the registered version, the deployment,
which steps the cache served, where the reports are, and how long every task took.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from e2eai.config import Settings

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Task names in the run directory are the components' names (see components/).
EVALUATE, REGISTER, DEPLOY, GATE_FAILURE = (
    "evaluate-model",
    "register-model",
    "deploy-canary",
    "report-gate-failure",
)
CACHED_STEPS = ("prepare-data", "build-features", "retrieve-training-set")


@dataclass(frozen=True)
class TaskRecord:
    """One executed task: parameters it returned, artifact files and metadata, wall time."""

    name: str
    seconds: float | None
    parameters: dict[str, Any]
    artifacts: dict[str, dict[str, Any]]


@dataclass
class LocalRunResult:
    """The summary ``e2eai pipeline run`` prints."""

    status: str  # "succeeded" | "failed"
    run_dir: Path | None
    seconds: float
    gates_passed: bool | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    not_registered_because: list[str] = field(default_factory=list)
    model_version: int | None = None
    deployment: dict[str, Any] | None = None
    cache_hits: dict[str, bool] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready: everything except the raw per-task records, plus per-task seconds."""
        record = asdict(self)
        record.pop("tasks")
        record["run_dir"] = str(self.run_dir) if self.run_dir else None
        record["task_seconds"] = {name: task.seconds for name, task in self.tasks.items()}
        return record


class _TaskClock(logging.Filter):
    """Notes when kfp.local starts and finishes each task (its log records pass through here)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = _ANSI.sub("", str(record.msg))
        if message.startswith("Executing task"):
            name = message.split("'")[1]
            self.started[name] = record.created
        elif message.startswith("Task ") and "finished with status" in message:
            self.finished[message.split("'")[1]] = record.created
        return True

    def seconds(self, task: str) -> float | None:
        if task in self.started and task in self.finished:
            return round(self.finished[task] - self.started[task], 3)
        return None


def _read_task(directory: Path, clock: _TaskClock) -> TaskRecord:
    output_file = directory / "executor_output.json"
    output = json.loads(output_file.read_text()) if output_file.is_file() else {}
    artifacts = {
        name: {"uri": entry["artifacts"][0]["uri"], "metadata": entry["artifacts"][0]["metadata"]}
        for name, entry in (output.get("artifacts") or {}).items()
        if entry.get("artifacts")
    }
    return TaskRecord(directory.name, clock.seconds(directory.name),
                      output.get("parameterValues") or {}, artifacts)  # fmt: skip


def collect_run(run_dir: Path | None, clock: _TaskClock, result: LocalRunResult) -> None:
    """Fill ``result`` from the task directories of a finished (or failed) run."""
    if run_dir is None:
        return
    tasks = {d.name: _read_task(d, clock) for d in sorted(run_dir.iterdir()) if d.is_dir()}
    result.tasks = tasks
    for name in CACHED_STEPS:
        if name in tasks and "cache_hit" in tasks[name].parameters:
            result.cache_hits[name] = bool(tasks[name].parameters["cache_hit"])
    if EVALUATE in tasks:
        evaluation = tasks[EVALUATE]
        result.gates_passed = evaluation.parameters.get("Output")
        gates = evaluation.artifacts.get("gates", {})
        result.gates = gates.get("metadata", {}).get("gates", [])
        for name in ("report", "gates"):
            if name in evaluation.artifacts:
                result.reports[f"training_{name}"] = evaluation.artifacts[name]["uri"]
    if "prepare-data" in tasks and "quality_report" in tasks["prepare-data"].artifacts:
        result.reports["data_quality"] = tasks["prepare-data"].artifacts["quality_report"]["uri"]
    if REGISTER in tasks:
        result.model_version = tasks[REGISTER].parameters.get("Output")
    if DEPLOY in tasks and "deployment" in tasks[DEPLOY].artifacts:
        deployment = tasks[DEPLOY].artifacts["deployment"]
        result.deployment = {**deployment["metadata"], "record": deployment["uri"]}
    if GATE_FAILURE in tasks:
        failure = tasks[GATE_FAILURE]
        decision = failure.artifacts.get("decision", {})
        result.not_registered_because = decision.get("metadata", {}).get("reasons", [])
        if "uri" in decision:
            result.reports["gate_failure"] = decision["uri"]


def run_locally(pipeline: Any, arguments: dict[str, Any], settings: Settings) -> LocalRunResult:
    """Run ``pipeline(**arguments)`` with kfp.local; never raises for a failed task.

    Task output (kfp prints it on stdout) is sent to stderr, so a caller's stdout stays clean.
    """
    from kfp import local

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root = (settings.home / "pipelines" / f"run-{stamp}-{uuid.uuid4().hex[:6]}").resolve()
    root.mkdir(parents=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        raise_on_error=True,
    )
    clock = _TaskClock()
    logger = logging.getLogger()
    logger.addFilter(clock)
    started = time.perf_counter()
    status, error = "succeeded", None
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            # Display names are for the Kubeflow UI; kfp.local warns about each one.
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner")
            # base_image is the cluster's; locally the current venv is the image by design.
            warnings.filterwarnings("ignore", message=".*custom or non-Python base image")
            pipeline(**arguments)
    except RuntimeError as exc:  # kfp.local: "Task 'x' finished with status FAILURE"
        status, error = "failed", _ANSI.sub("", str(exc))
    finally:
        logger.removeFilter(clock)
    runs = [d for d in root.iterdir() if d.is_dir()]
    result = LocalRunResult(
        status=status,
        run_dir=runs[0] if runs else None,
        seconds=round(time.perf_counter() - started, 3),
        error=error,
    )
    collect_run(result.run_dir, clock, result)
    return result
