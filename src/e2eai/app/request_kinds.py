"""What a prediction request carries for each kind of task, and what the app keeps of the answer.

A tabular task's request is its request fields (a form of inputs, enriched by the predictor
from Feast); its answer is P(positive) with each input's contribution. A text task's request
is one message, an image task's one photo (base64 PNG/JPEG); their answers are every class's
probability, explained by token attributions or an occlusion saliency map.

``request_kind(task)`` picks the kind; the API asks it for the request model, the serving
instances (with what to store of each request) and the record fields of each answer, so the
endpoints themselves do not branch on the modality.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from e2eai.app.image_upload import MAX_PIXELS, ImageUploads
from e2eai.app.schemas import TaskField, TaskInput, example_value, request_model, top_contributions
from e2eai.errors import InvalidInferenceRequest
from e2eai.serving.image_inputs import FORMATS

if TYPE_CHECKING:
    from e2eai.tasks import Task

SALIENCY_DIGITS = 4
"""Significant digits kept of a saliency square: a map is read by its shape, and an untrained
or very sure model's falls are tiny (1e-5), so digits are relative, not decimals."""


@dataclass(frozen=True)
class ServingInstance:
    """One request as sent to serving, and as stored with its prediction."""

    instance: dict[str, Any]
    stored: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """What a prediction record keeps of the model's answer to one request."""

    probability: float  # P(positive); multi-class: the predicted class's
    explanation: dict[str, Any] | None
    predicted_class: int | None = None
    class_probabilities: list[float] | None = None


class RequestKind(ABC):
    """The requests and answers of one kind of task."""

    modality: str

    def __init__(self, task: Task) -> None:
        self.task = task

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The class names of a multi-class task, in index order; None for a binary one."""
        return None

    @abstractmethod
    def request_model(self) -> type[BaseModel]:
        """The pydantic model of one request (its OpenAPI schema, with an example)."""

    @abstractmethod
    def task_input(self) -> TaskInput:
        """What the app's form shows for a request."""

    def task_fields(self) -> list[TaskField]:
        return [
            TaskField(
                name=f.name,
                type=f.type,
                description=f.description,
                required=not f.nullable,
                minimum=f.minimum,
                maximum=f.maximum,
                max_length=f.max_length,
                example=example_value(f),
            )
            for f in self.task.request_fields
        ]

    def to_serving(
        self, requests: Sequence[BaseModel], paths: Sequence[str]
    ) -> list[ServingInstance]:
        """The serving instances of validated requests (``paths`` name each in errors:
        ``request``, ``requests[3]``); InvalidInferenceRequest for what the model cannot
        read, naming the field."""
        served = []
        for request in requests:
            instance = request.model_dump(mode="json")
            served.append(ServingInstance(instance=instance, stored=instance))
        return served

    @abstractmethod
    def answer(
        self,
        probability: float | list[float],
        features: dict[str, Any] | None,
        explanation: dict[str, Any] | None,
    ) -> Answer:
        """The record fields of serving's answer to one request."""


class TabularRequests(RequestKind):
    """The task's request fields in; P(positive) and each input's contribution out."""

    modality = "tabular"

    def __init__(self, task: Task, keep: int) -> None:
        super().__init__(task)
        self.keep = keep

    def request_model(self) -> type[BaseModel]:
        return request_model(self.task)

    def task_input(self) -> TaskInput:
        return TaskInput(kind="fields")

    def answer(
        self,
        probability: float | list[float],
        features: dict[str, Any] | None,
        explanation: dict[str, Any] | None,
    ) -> Answer:
        if isinstance(probability, list):
            raise ValueError("serving answered class probabilities for a binary task")
        return Answer(
            probability=probability,
            explanation=top_contributions(explanation, features, self.keep),
        )


class ClassRequests(RequestKind):
    """Multi-class answers: every class's probability, the predicted class, its evidence."""

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(getattr(self.task, "classes", ()))

    def answer(
        self,
        probability: float | list[float],
        features: dict[str, Any] | None,
        explanation: dict[str, Any] | None,
    ) -> Answer:
        row = probability if isinstance(probability, list) else [1.0 - probability, probability]
        if len(row) != len(self.classes):
            raise ValueError(
                f"serving answered {len(row)} class probabilities, the task has "
                f"{len(self.classes)} classes"
            )
        predicted = max(range(len(row)), key=row.__getitem__)
        try:
            kept = None if explanation is None else self.explanation(explanation)
        except (KeyError, TypeError, ValueError, IndexError):
            kept = None  # an explanation the app cannot read is left out, not a failure
        return Answer(
            probability=row[predicted],
            explanation=kept,
            predicted_class=predicted,
            class_probabilities=row,
        )

    @abstractmethod
    def explanation(self, explained: dict[str, Any]) -> dict[str, Any]:
        """What the app keeps of the predictor's explanation of one request."""


class TextRequests(ClassRequests):
    """One message in (a text box); token attributions out."""

    modality = "text"

    @property
    def field(self) -> str:
        return self.task.request_fields[0].name

    @property
    def max_chars(self) -> int:
        return int(getattr(self.task, "max_chars", self.task.request_fields[0].max_length or 0))

    def request_model(self) -> type[BaseModel]:
        return request_model(self.task)

    def task_input(self) -> TaskInput:
        return TaskInput(kind="text", field=self.field, max_chars=self.max_chars)

    def to_serving(
        self, requests: Sequence[BaseModel], paths: Sequence[str]
    ) -> list[ServingInstance]:
        served = super().to_serving(requests, paths)
        for item, path in zip(served, paths, strict=True):
            text = item.instance[self.field]
            where = f"{path}.{self.field}"
            if not text.strip():
                raise InvalidInferenceRequest(where, "the message is empty (only spaces)", 422)
        return served

    def explanation(self, explained: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "tokens",
            "class_index": int(explained["class"]),
            "probability": float(explained["probability"]),
            "tokens": [
                {"token": str(t["token"]), "attribution": float(t["attribution"])}
                for t in explained["tokens"]
            ],
        }


class ImageRequests(ClassRequests):
    """One photo in (base64 PNG/JPEG, a file picker); an occlusion saliency map out."""

    modality = "image"

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.field = task.request_fields[0].name
        self.shape: tuple[int, int, int] = tuple(getattr(task, "image_shape", (1, 28, 28)))  # type: ignore[assignment]
        self.uploads = ImageUploads(self.field, self.shape)

    def request_model(self) -> type[BaseModel]:
        description = (
            "A photo: a PNG or JPEG file as base64 text (or a data: URL). It is converted to "
            f"{'grayscale' if self.shape[0] == 1 else 'RGB'} and resized to "
            f"{self.shape[2]}×{self.shape[1]} as the model reads it."
        )
        fields: dict[str, Any] = {
            self.field: (str, Field(..., min_length=1, description=description))
        }
        return create_model(
            f"{self.task.name.title().replace('_', '').replace('-', '')}Request",
            __config__=ConfigDict(
                extra="forbid",
                json_schema_extra={"examples": [{self.field: "iVBORw0KGgoAAAANSUhEUgAA…"}]},
            ),
            **fields,
        )

    def task_input(self) -> TaskInput:
        return TaskInput(
            kind="image",
            field=self.field,
            formats=sorted(FORMATS),
            max_pixels=MAX_PIXELS,
            shape=list(self.shape),
        )

    def task_fields(self) -> list[TaskField]:
        return [
            TaskField(
                name=self.field,
                type="image",
                description=f"A photo (PNG or JPEG); the model reads it at "
                f"{self.shape[2]}×{self.shape[1]}.",
                required=True,
            )
        ]

    def to_serving(
        self, requests: Sequence[BaseModel], paths: Sequence[str]
    ) -> list[ServingInstance]:
        served = []
        for request, path in zip(requests, paths, strict=True):
            decoded = self.uploads.decode(getattr(request, self.field), f"{path}.{self.field}")
            served.append(
                ServingInstance(
                    instance={self.field: {"b64": decoded.png_base64}},
                    stored={self.field: {"b64": decoded.png_base64, "upload": decoded.upload}},
                )
            )
        return served

    def explanation(self, explained: dict[str, Any]) -> dict[str, Any]:
        """The map at the resolution it was measured at: one value per occluded square (the
        predictor repeats each over its ``patch × patch`` pixels)."""
        saliency = explained["saliency"]
        patch = max(int(explained.get("patch") or 1), 1)
        height, width = len(saliency), len(saliency[0])
        squares = [
            [float(f"{float(value):.{SALIENCY_DIGITS}g}") for value in row[::patch]]
            for row in saliency[::patch]
        ]
        return {
            "kind": "saliency",
            "class_index": int(explained["class"]),
            "probability": float(explained["probability"]),
            "patch": patch,
            "height": height,
            "width": width,
            "squares": squares,
        }


def request_kind(task: Task, keep: int) -> RequestKind:
    """The kind of ``task``'s requests (``keep``: contributions a tabular answer keeps)."""
    if task.modality == "text":
        return TextRequests(task)
    if task.modality == "image":
        return ImageRequests(task)
    return TabularRequests(task, keep)
