"""What a model version's traffic is compared with: the rows it learnt on, as it scored them.

``reference.parquet`` (a sample of the training part, stored with the version since this
revision; ``holdout.parquet`` for older versions) is scored once with the version's own
ONNX graph in ONNX Runtime, which also gives each input's mean absolute contribution when
the graph explains itself (the weights of the drift share). Cached under
``<home>/monitoring/reference``. The holdout alone, scored the same way, is what the
version's source risk is bounded with (:mod:`e2eai.monitoring.risk`), cached under
``<home>/monitoring/holdout``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from e2eai.errors import ModelArtifactError

if TYPE_CHECKING:
    from e2eai.config import Settings
    from e2eai.tasks import Task

HOLDOUT_FILE = "holdout.parquet"
REFERENCE_FILES = ("reference.parquet", HOLDOUT_FILE)


@dataclass(frozen=True)
class Reference:
    """One version's reference rows (model inputs, label), its probabilities on them, and
    the importance of each input (mean |contribution|; equal when the graph has none)."""

    version: int
    source: str
    frame: pd.DataFrame
    probability: np.ndarray
    importance: dict[str, float]


def load_reference(settings: Settings, task: Task, version: int) -> Reference:
    """The reference of registry ``version`` (fetched, verified and scored once, then cached)."""
    return _load_scored(settings, task, version, REFERENCE_FILES, "reference")


def load_holdout(settings: Settings, task: Task, version: int) -> Reference:
    """Registry ``version``'s holdout (``holdout.parquet``: rows it never learnt on, what its
    source risk is bounded with), scored by its own graph once, then cached."""
    return _load_scored(settings, task, version, (HOLDOUT_FILE,), "holdout")


def _load_scored(
    settings: Settings, task: Task, version: int, names: tuple[str, ...], kind: str
) -> Reference:
    from e2eai.registry import ModelRegistry

    cache = settings.home / "monitoring" / kind / f"v{version}"
    scored, meta = cache / "scored.parquet", cache / f"{kind}.json"
    if scored.is_file() and meta.is_file():
        frame = pd.read_parquet(scored)
        info = json.loads(meta.read_text())
        probability = frame.pop("__probability").to_numpy()
        return Reference(version, info["source"], frame, probability, info["importance"])
    with ModelRegistry.from_settings(settings) as registry:
        record = registry.get(version)
        source = next((n for n in names if n in record.artifacts), None)
        if source is None or "model.onnx" not in record.artifacts:
            raise ModelArtifactError(
                f"version {version} has no {' or '.join(names)} or no model.onnx to monitor against"
            )
        frame = pd.read_parquet(registry.fetch_artifact(version, source, cache / "fetched"))
        onnx = registry.fetch_artifact(version, "model.onnx", cache / "fetched")
    probability, importance = _score(onnx, frame, task)
    cache.mkdir(parents=True, exist_ok=True)
    frame.assign(__probability=probability).to_parquet(scored, index=False)
    meta.write_text(json.dumps({"source": source, "importance": importance}))
    return Reference(version, source, frame, probability, importance)


def _score(onnx: Path, frame: pd.DataFrame, task: Task) -> tuple[np.ndarray, dict[str, float]]:
    import onnxruntime as ort

    from e2eai.export.explanation import CONTRIBUTIONS, read_explanation
    from e2eai.export.signature import OUTPUT_NAME, onnx_feed

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    explanation = read_explanation(
        session.get_modelmeta().custom_metadata_map, {o.name for o in session.get_outputs()}
    )
    feed = onnx_feed(frame, task)
    names = [f.name for f in task.features]
    if explanation is None:
        (probability,) = session.run([OUTPUT_NAME], feed)
        return np.asarray(probability, float).reshape(-1), dict.fromkeys(names, 1.0)
    probability, contributions = session.run([OUTPUT_NAME, CONTRIBUTIONS], feed)
    spread = np.abs(np.asarray(contributions, float)).mean(axis=0)
    by_name = dict(zip(explanation.features, spread.tolist(), strict=True))
    return np.asarray(probability, float).reshape(-1), {n: by_name.get(n, 0.0) for n in names}
