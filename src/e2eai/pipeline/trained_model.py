"""A training result as a directory: what the train step's Model artifact holds.

The train step writes ``training_result.json`` next to the model, holdout and plots, with
paths relative to the directory, so later steps (evaluate, export, register) rebuild the
``TrainingResult`` wherever the artifact was downloaded to.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from e2eai.errors import PipelineError
from e2eai.training.gates import GateResult
from e2eai.training.run import TrainingResult

RESULT_FILE = "training_result.json"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError as exc:
        raise PipelineError(f"{path} is not inside the trained model directory {root}") from exc


def save_training_result(result: TrainingResult, directory: Path) -> Path:
    """Write ``training_result.json`` describing ``result`` (whose files are in ``directory``)."""
    record: dict[str, Any] = {
        "family": result.family,
        "model_dir": _relative(result.model_dir, directory),
        "holdout_path": _relative(result.holdout_path, directory),
        "metrics": result.metrics,
        "gates": [asdict(g) for g in result.gates],
        "plots": {k: _relative(v, directory) for k, v in result.plots.items()},
        "params": result.params,
        "training_window": result.training_window,
        "holdout_window": result.holdout_window,
        "task": result.task,
        "split": result.split,
        "raw_snapshot": result.raw_snapshot,
        "parent_version": result.parent_version,
        "champion_version": result.champion_version,
        "extra_artifacts": {k: _relative(v, directory) for k, v in result.extra_artifacts.items()},
        "summary": result.summary(),
    }
    path = directory / RESULT_FILE
    path.write_text(json.dumps(record, indent=1, default=_plain))
    return path


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def load_training_result(directory: Path) -> TrainingResult:
    """The TrainingResult saved in ``directory`` (torch/HPO run details are not restored)."""
    path = directory / RESULT_FILE
    if not path.is_file():
        raise PipelineError(
            f"{directory}: no {RESULT_FILE}; is this a train step's Model artifact?"
        )
    record = json.loads(path.read_text())
    return TrainingResult(
        family=record["family"],
        run_dir=directory,
        model_dir=directory / record["model_dir"],
        holdout_path=directory / record["holdout_path"],
        metrics=record["metrics"],
        gates=[GateResult(**g) for g in record["gates"]],
        plots={k: directory / v for k, v in record["plots"].items()},
        params=record["params"],
        training_window=record["training_window"],
        holdout_window=record["holdout_window"],
        task=record.get("task"),
        split=record.get("split"),
        raw_snapshot=record["raw_snapshot"],
        parent_version=record["parent_version"],
        champion_version=record["champion_version"],
        extra_artifacts={k: directory / v for k, v in record["extra_artifacts"].items()},
    )


def training_summary(directory: Path) -> dict[str, Any]:
    """The JSON digest ``TrainingResult.summary()`` recorded by the train step."""
    return json.loads((directory / RESULT_FILE).read_text())["summary"]
