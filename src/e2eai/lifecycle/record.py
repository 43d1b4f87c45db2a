"""What a lifecycle run did, step by step, and what one training run gave."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2eai.config import Settings

Progress = Callable[[str], None]
"""Where a run reports what it is doing (one line per call)."""


@dataclass
class LoopRecord:
    """What the loop did, step by step, with the numbers a reader needs."""

    run_dir: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    canary: list[dict[str, Any]] = field(default_factory=list)
    monitoring: dict[str, Any] | None = None  # the pass over the served answers
    outcome: str = ""

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"

    def step(self, name: str, started: float, **details: Any) -> None:
        self.steps.append({"step": name, "seconds": round(time.perf_counter() - started, 2),
                           **details})  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "outcome": self.outcome,
            "data": self.data,
            "models": self.models,
            "canary_decisions": [
                {k: d[k] for k in ("action", "weight_before", "weight_after", "reason")}
                for d in self.canary
            ],
            "monitoring": self.monitoring,
            "steps": self.steps,
            "report": str(self.report_path),
        }


@dataclass(frozen=True)
class TrainingOutcome:
    """What one training run (data → features → train → gates → ONNX → register) gave."""

    passed: bool
    gates: list[str]
    version: int | None  # registered version; None when the gates failed
    reports: dict[str, str] = field(default_factory=dict)


TrainFn = Callable[[Settings, int | None], TrainingOutcome]
"""How the loop trains: in this process (default) or through the KFP pipeline."""
