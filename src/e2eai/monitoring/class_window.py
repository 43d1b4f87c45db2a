"""Monitoring an image or text task's window: what the tabular window does, for class answers.

A multi-class task's prediction log holds, per request, what was asked (the photo as the
model-sized PNG, or the message), the predicted class and every class's probability, and
the label once feedback arrives. A window is judged on:

- **quality** of its labelled predictions (:func:`class_quality`): accuracy with its 95 %
  Wilson interval, macro-F1, log-loss, multi-class Brier, recall and precision per class,
  and the task's priority class on its own (triage: the negative messages' recall), next
  to the same figures of the answering version on its holdout;
- **input drift**: an image is summarised by brightness, contrast, sharpness, dark share and
  edge orientation plus the served graph's class-probability vector
  (:func:`e2eai.monitoring.image_drift.check_image_drift`), a message by its length, words,
  out-of-vocabulary and non-letter shares, script mix and sentence embedding
  (:func:`e2eai.monitoring.text_drift.check_text_drift`), each column tested with the
  tabular check's Holm-corrected tests (:mod:`e2eai.monitoring.drift`);
- **prediction drift**: the predicted class (categorical) and the answer's confidence.

The reference is the answering version's ``reference.parquet`` (a sample of its training
rows) scored once by its own ONNX graph and cached, as for tabular tasks; its holdout,
scored the same way, bounds the version's source risk: the risk tracker
(:mod:`e2eai.monitoring.risk`) follows the 0/1 misclassification of the predicted class.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e2eai.errors import ModelArtifactError
from e2eai.monitoring.quality import Z95

if TYPE_CHECKING:
    from e2eai.app.store import LoggedPrediction
    from e2eai.config import Settings
    from e2eai.monitoring.drift import DriftResult
    from e2eai.tasks import Task

PREDICTED_CLASS = "predicted_class"
CONFIDENCE = "confidence"


@dataclass(frozen=True)
class ClassReference:
    """One version's reference (or holdout) rows and its class probabilities ``[N, K]`` on
    them under its own served graph."""

    version: int
    source: str
    frame: pd.DataFrame
    probabilities: np.ndarray
    cache: Path | None = None
    """Where it is cached (what is derived from it once is cached there too)."""

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def load_class_reference(
    settings: Settings, task: Task, version: int, kind: str = "reference"
) -> ClassReference:
    """Registry ``version``'s ``reference.parquet`` (``kind="holdout"``: its
    ``holdout.parquet``), scored by its ``model.onnx`` once, then cached under
    ``<home>/monitoring/<kind>/v<version>``."""
    from e2eai.registry import ModelRegistry

    cache = settings.home / "monitoring" / kind / f"v{version}"
    scored, meta = cache / "scored.parquet", cache / f"{kind}.json"
    if scored.is_file() and meta.is_file():
        frame, info = pd.read_parquet(scored), json.loads(meta.read_text())
        columns = info["probability_columns"]
        probabilities = frame[columns].to_numpy(dtype=np.float64)
        frame = frame.drop(columns=columns)
        return ClassReference(version, info["source"], frame, probabilities, cache)
    name = f"{kind}.parquet"
    with ModelRegistry.from_settings(settings) as registry:
        record = registry.get(version)
        if name not in record.artifacts or "model.onnx" not in record.artifacts:
            raise ModelArtifactError(
                f"version {version} has no {name} or no model.onnx to monitor against"
            )
        frame = pd.read_parquet(registry.fetch_artifact(version, name, cache / "fetched"))
        onnx = registry.fetch_artifact(version, "model.onnx", cache / "fetched")
    probabilities = ServedGraph(onnx, task, cache / "fetched").probabilities(
        reference_inputs(task, frame)
    )
    columns = [f"__p{k}" for k in range(probabilities.shape[1])]
    cache.mkdir(parents=True, exist_ok=True)
    frame.assign(**dict(zip(columns, probabilities.T, strict=True))).to_parquet(scored, index=False)
    meta.write_text(json.dumps({"source": name, "probability_columns": columns}))
    return ClassReference(version, name, frame, probabilities, cache)


class ServedGraph:
    """A version's ONNX graph in ONNX Runtime: model inputs → class probabilities ``[N, K]``
    (a text graph tokenizes with the tokenizer embedded in its metadata, as serving does)."""

    def __init__(self, onnx: Path, task: Task, work_dir: Path) -> None:
        from e2eai.export.image_onnx import session

        self.task = task
        self.session = session(onnx)
        self.tokenizer = None
        if task.modality == "text":
            from e2eai.serving.text_inputs import tokenizer_of

            metadata = self.session.get_modelmeta().custom_metadata_map
            self.tokenizer = tokenizer_of(metadata, work_dir / "tokenizer")

    def probabilities(self, inputs: np.ndarray | list[str]) -> np.ndarray:
        if self.tokenizer is not None:
            from e2eai.export.text_onnx import onnx_probabilities

            return onnx_probabilities(self.session, self.tokenizer, list(inputs))
        from e2eai.export.image_onnx import onnx_probabilities

        return onnx_probabilities(self.session, np.asarray(inputs))

    def class_probabilities(self, images: np.ndarray) -> np.ndarray:
        """What :func:`~e2eai.monitoring.image_drift.model_embedding` reads of a classifier."""
        return self.probabilities(images)


def reference_inputs(task: Task, frame: pd.DataFrame) -> np.ndarray | list[str]:
    """A training-shaped frame's model inputs: images ``[N, C, H, W]`` in [0, 1], or messages."""
    if task.modality == "image":
        from e2eai.training.image_families import frame_images

        shape = tuple(getattr(task, "image_shape", (1, 28, 28)))
        return frame_images(frame, shape[1:])
    from e2eai.training.text_families import frame_texts

    return frame_texts(frame)


def logged_inputs(task: Task, log: list[LoggedPrediction]) -> np.ndarray | list[str]:
    """What the logged requests asked, as model inputs (requests logged without it are left
    out): images decoded from their stored PNG as serving decodes them, or the messages."""
    field = task.request_fields[0].name
    asked = [p.request[field] for p in log if p.request and p.request.get(field) is not None]
    if task.modality == "text":
        return [str(text) for text in asked]
    from e2eai.serving.image_inputs import ImageInputs

    shape: tuple[int, int, int] = tuple(getattr(task, "image_shape", (1, 28, 28)))  # type: ignore[assignment]
    if not asked:
        return np.zeros((0, *shape), dtype=np.float32)
    name = task.features[0].name
    instances = [{name: {"b64": item["b64"]}} for item in asked]
    return ImageInputs(name, shape).feed_from_instances(instances, len(instances))[name]


def class_quality(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    priority_class: str | None = None,
) -> dict[str, Any]:
    """The holdout metrics of :func:`e2eai.training.evaluation.classification_metrics` on a
    window's labelled predictions, plus accuracy's 95 % Wilson interval and the class mix."""
    from e2eai.training.evaluation import classification_metrics

    y = np.asarray(labels, dtype=int)
    p = np.asarray(probabilities, dtype=np.float64)
    if len(y) != len(p) or not len(y):
        raise ValueError(f"need as many labels as probability rows, and some ({len(y)}, {len(p)})")
    p = p / p.sum(axis=1, keepdims=True)  # stored float32 answers sum to 1 within ~1e-7
    quality = classification_metrics(y, p, class_names, priority_class)
    low, high = wilson_interval(int((p.argmax(axis=1) == y).sum()), len(y))
    counts = np.bincount(y, minlength=len(class_names))
    return {
        **quality,
        "accuracy_low": low,
        "accuracy_high": high,
        "label_share": {n: float(c / len(y)) for n, c in zip(class_names, counts, strict=True)},
    }


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound near 0 and 1, unlike the normal one)."""
    if n <= 0:
        raise ValueError("n must be positive")
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ClassWindowDrift:
    """A window's input drift and prediction drift against a class reference."""

    inputs: DriftResult
    inputs_summary: dict[str, Any]
    predictions: DriftResult


def check_class_drift(
    settings: Settings,
    task: Task,
    reference: ClassReference,
    log: list[LoggedPrediction],
    work_dir: Path,
) -> ClassWindowDrift | None:
    """Input and prediction drift of the logged window against ``reference`` (None when no
    logged request carries its input)."""
    from e2eai.monitoring.drift import check_drift

    current = logged_inputs(task, log)
    if not len(current):
        return None
    if task.modality == "image":
        from e2eai.monitoring.image_drift import check_image_drift
        from e2eai.registry import ModelRegistry

        with ModelRegistry.from_settings(settings) as registry:
            onnx = registry.fetch_artifact(reference.version, "model.onnx", work_dir)
        graph = ServedGraph(onnx, task, work_dir)
        # The served graph's embedding of an image is its class probabilities, which the
        # reference already holds.
        report: Any = check_image_drift(
            reference_inputs(task, reference.frame),
            current,
            graph,
            reference_embedding=(reference.probabilities, "probabilities"),
        )
    else:
        from e2eai.monitoring.text_drift import check_text_drift

        max_tokens = int(getattr(task, "max_tokens", 64))
        messages, embedding = reference_messages(task, reference, max_tokens)
        report = check_text_drift(
            messages, list(current), max_tokens=max_tokens, reference_embedding=embedding
        )
    classes = tuple(getattr(task, "classes", ()))
    answered = [p for p in log if p.class_probabilities]
    predictions = check_drift(
        _answers(classes, reference.probabilities),
        _answers(classes, np.array([p.class_probabilities for p in answered], dtype=np.float64)),
        {PREDICTED_CLASS: "categorical", CONFIDENCE: "numeric"},
    )
    return ClassWindowDrift(report.drift, report.summary(), predictions)


TEXT_REFERENCE_MESSAGES = 2_000
"""Reference messages a text window is compared with at most (a seeded sample of the
version's reference). Their MiniLM embedding costs ~18 ms a message on one shared core and
is computed once per version; a window of ~1,000 messages against 2,000 keeps 89 % of the
effective sample size (n·m/(n+m)) of the whole 6,000."""


def reference_messages(
    task: Task, reference: ClassReference, max_tokens: int
) -> tuple[list[str], np.ndarray]:
    """The reference's messages (at most :data:`TEXT_REFERENCE_MESSAGES`, seeded sample) and
    their pretrained-encoder embedding at ``max_tokens`` word pieces, cached with the
    reference the first time."""
    from e2eai.monitoring.text_drift import message_embeddings

    frame = reference.frame
    if len(frame) > TEXT_REFERENCE_MESSAGES:
        frame = frame.sample(TEXT_REFERENCE_MESSAGES, random_state=0)
    messages = list(reference_inputs(task, frame))
    cached = (
        reference.cache / f"minilm-{max_tokens}-{len(messages)}.npy"
        if reference.cache is not None
        else None
    )
    if cached is not None and cached.is_file():
        embedding = np.load(cached)
        if len(embedding) == len(messages):
            return messages, embedding
    embedding = message_embeddings(messages, max_tokens)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial.npy")
        np.save(partial, embedding)
        partial.replace(cached)  # a pass killed mid-write leaves no truncated cache
    return messages, embedding


def _answers(classes: tuple[str, ...], probabilities: np.ndarray) -> pd.DataFrame:
    """Predicted class (by name) and its probability, one row per answer."""
    predicted = probabilities.argmax(axis=1)
    return pd.DataFrame(
        {
            PREDICTED_CLASS: [classes[k] if k < len(classes) else str(k) for k in predicted],
            CONFIDENCE: probabilities.max(axis=1),
        }
    )
