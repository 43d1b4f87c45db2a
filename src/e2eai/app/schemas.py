"""The API's typed request and response models; the request model is built from the task.

``request_model(task)`` turns the task's request fields (name, type, range, length) into a
pydantic model, so another task gets its own form and validation without app code, and
``/openapi.json`` documents each task's fields with an example. Everything else here is the
fixed shape of the API's answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
)

if TYPE_CHECKING:
    from e2eai.schema import RequestField
    from e2eai.tasks import Task

Band = Literal["low", "medium", "high"]

_TYPES: dict[str, Any] = {"str": str, "int": int, "float": float, "datetime": AwareDatetime}


def example_value(field: RequestField) -> Any:
    """A plausible value for the docs' example (the field's description names one if it can)."""
    if field.type == "datetime":
        return "2013-06-01T08:00:00-04:00"
    if field.type in {"int", "float"}:
        low = field.minimum if field.minimum is not None else 0
        value = max(low, min(field.maximum if field.maximum is not None else low + 1, 100))
        return int(value) if field.type == "int" else float(value)
    quoted = field.description.split("'")
    return quoted[1] if len(quoted) >= 3 else "x"


def request_model(task: Task) -> type[BaseModel]:
    """The pydantic model of one prediction request of ``task`` (strict types, no extras)."""
    fields: dict[str, Any] = {}
    for f in task.request_fields:
        python_type = _TYPES[f.type]
        constraints: dict[str, Any] = {"description": f.description}
        if f.minimum is not None:
            constraints["ge"] = f.minimum
        if f.maximum is not None:
            constraints["le"] = f.maximum
        if f.max_length is not None:
            constraints["max_length"] = f.max_length
        if f.type == "str":
            constraints.setdefault("min_length", 0 if f.nullable else 1)
        annotation = python_type | None if f.nullable else python_type
        default = None if f.nullable else ...
        fields[f.name] = (annotation, Field(default, **constraints))
    example = {f.name: example_value(f) for f in task.request_fields}
    return create_model(
        f"{task.name.title().replace('_', '').replace('-', '')}Request",
        __config__=ConfigDict(
            extra="forbid", strict=False, json_schema_extra={"examples": [example]}
        ),
        **fields,
    )


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: what is wrong, and the field at fault when there is one."""

    error: str
    field: str | None = None


class TaskField(BaseModel):
    name: str
    type: Literal["str", "int", "float", "datetime", "image"] = Field(
        description="image: a PNG or JPEG file, base64 (the form's file picker)."
    )
    description: str
    required: bool
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    example: Any = None


class TaskInput(BaseModel):
    """What one prediction request carries: the form the app shows for it."""

    kind: Literal["fields", "text", "image"] = Field(
        description="fields: the task's request fields (a form of inputs); text: one message "
        "(a text box); image: one photo (a file picker)."
    )
    field: str | None = Field(
        default=None, description="The request field of a text or image input."
    )
    max_chars: int | None = Field(default=None, description="text: the longest message accepted.")
    formats: list[str] | None = Field(default=None, description="image: the file formats accepted.")
    max_pixels: int | None = Field(default=None, description="image: the largest width × height.")
    shape: list[int] | None = Field(
        default=None,
        description="image: [channels, height, width] the model reads (uploads are resized).",
    )


class TaskInfo(BaseModel):
    name: str
    description: str
    positive_name: str
    modality: Literal["tabular", "image", "text"] = "tabular"
    classes: list[str] | None = Field(
        None, description="The class names in index order (multi-class tasks); null: binary."
    )
    input: TaskInput = Field(default_factory=lambda: TaskInput(kind="fields"))
    fields: list[TaskField]


class Contribution(BaseModel):
    feature: str
    value: Any = Field(None, description="The model input (null: missing, or the deep part).")
    contribution: float = Field(description="Its signed share of the logit.")


class OtherContributions(BaseModel):
    features: int = Field(description="How many smaller contributions are summed here.")
    contribution: float = Field(description="Their sum.")


class Explanation(BaseModel):
    """Why: ``base_value + Σ contribution + rest.contribution`` is the logit of ``probability``."""

    base_value: float = Field(description="The mean logit over the model's reference rows.")
    contributions: list[Contribution] = Field(
        description="The largest contributions, largest first by size (app.explanation_features)."
    )
    rest: OtherContributions | None = Field(None, description="What the others add up to.")


def top_contributions(
    explanation: dict[str, Any] | None, features: dict[str, Any] | None, keep: int
) -> dict[str, Any] | None:
    """The predictor's explanation (every input, largest first) cut to its ``keep`` largest
    contributions, each with its input's value from ``features``, and the sum of the rest,
    so that it still adds up to the logit."""
    if explanation is None:
        return None
    values = features or {}
    contributions = explanation["contributions"]
    rest = contributions[keep:]
    return {
        "base_value": explanation["base_value"],
        "contributions": [
            {
                "feature": c["feature"],
                "value": values.get(c["feature"]),
                "contribution": c["contribution"],
            }
            for c in contributions[:keep]
        ],
        "rest": {"features": len(rest), "contribution": sum(c["contribution"] for c in rest)}
        if rest
        else None,
    }


class Saliency(BaseModel):
    """An image's occlusion saliency: how much the predicted class's probability falls when
    each ``patch × patch`` square is hidden (negative: hiding it made the class likelier)."""

    kind: Literal["saliency"]
    class_index: int
    probability: float
    patch: int = Field(description="Side of a square in the model's pixels.")
    height: int
    width: int
    squares: list[list[float]] = Field(
        description="One value per square, rows top to bottom (height / patch rows)."
    )


class TokenAttribution(BaseModel):
    token: str
    attribution: float = Field(description="How much the class's probability falls without it.")


class TokenAttributions(BaseModel):
    """A message's word pieces, each with how much the predicted class depends on it."""

    kind: Literal["tokens"]
    class_index: int
    probability: float
    tokens: list[TokenAttribution]


class Prediction(BaseModel):
    id: str
    request_id: str
    created_at: datetime
    probability: float = Field(
        ge=0, le=1, description="P(positive); multi-class tasks: the predicted class's."
    )
    band: Band | None = Field(description="Risk band of a binary task's probability; else null.")
    predicted_class: str | None = Field(None, description="Multi-class tasks: the class's name.")
    class_index: int | None = Field(None, description="Multi-class tasks: the class's index.")
    class_probabilities: dict[str, float] | None = Field(
        None, description="Multi-class tasks: every class's probability, in the task's order."
    )
    model_version: str
    slot: str
    latency_ms: float
    explanation: Explanation | Saliency | TokenAttributions | None = Field(
        None,
        description="Why: each input's contribution (tabular), a saliency map (images) or "
        "token attributions (text); null: the model does not explain.",
    )


class Predictions(BaseModel):
    predictions: list[Prediction]


FeedbackLabel = Annotated[
    Literal[0, 1], Field(description="The actual outcome: 1 = positive (e.g. delayed).")
]
FeedbackSource = Annotated[
    str,
    Field(
        max_length=32,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Who or what knew the outcome (e.g. 'api', 'ui', 'replay').",
    ),
]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: FeedbackLabel
    source: FeedbackSource = "api"


class FeedbackItemIn(BaseModel):
    """One label of a feedback batch."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(min_length=1, max_length=64, description="A prediction's id.")
    label: FeedbackLabel


class FeedbackBatchIn(BaseModel):
    """Many predictions' actual outcomes in one request, from one source."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"prediction_id": "3f2a9c0e5b7d4e1f8a6b2c4d9e0f1a2b", "label": 1},
                        {"prediction_id": "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e", "label": 0},
                    ],
                    "source": "replay",
                }
            ]
        },
    )

    items: list[FeedbackItemIn] = Field(min_length=1)
    source: FeedbackSource = "api"


def feedback_batch_model(max_items: int) -> type[FeedbackBatchIn]:
    """``FeedbackBatchIn`` with at most ``max_items`` labels (``app.max_feedback_batch``)."""
    return create_model(
        "FeedbackBatchIn",
        __base__=FeedbackBatchIn,
        __doc__=FeedbackBatchIn.__doc__,
        items=(
            list[FeedbackItemIn],
            Field(min_length=1, max_length=max_items, description=f"1 to {max_items} labels."),
        ),
    )


def _class_index(classes: tuple[str, ...]) -> Any:
    """A validator taking a class's name or index to its index."""
    names = {name.lower(): i for i, name in enumerate(classes)}
    expected = f"a class ({', '.join(classes)}) or its index 0–{len(classes) - 1}"

    def to_index(value: Any) -> int:
        if isinstance(value, str) and value.strip().lower() in names:
            return names[value.strip().lower()]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(classes):
            return value
        raise ValueError(f"{str(value)[:40]!r} is not {expected}")

    return to_index


def class_label(classes: tuple[str, ...]) -> Any:
    """The feedback label of a multi-class task: a class's name or index, stored as the index."""
    return Annotated[
        int,
        BeforeValidator(_class_index(classes)),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": len(classes) - 1},
                    {"type": "string", "enum": list(classes)},
                ],
                "description": "The actual class: its name or its index.",
            }
        ),
    ]


def multiclass_feedback_models(
    classes: tuple[str, ...], max_items: int
) -> tuple[type[BaseModel], type[BaseModel]]:
    """``FeedbackIn`` and the capped ``FeedbackBatchIn`` whose labels are ``classes``."""
    label = class_label(classes)
    single = create_model(
        "ClassFeedbackIn",
        __config__=ConfigDict(extra="forbid"),
        label=(label, ...),
        source=(FeedbackSource, "api"),
    )
    item = create_model(
        "ClassFeedbackItemIn",
        __config__=ConfigDict(extra="forbid"),
        prediction_id=(str, Field(min_length=1, max_length=64, description="A prediction's id.")),
        label=(label, ...),
    )
    batch = create_model(
        "ClassFeedbackBatchIn",
        __config__=ConfigDict(extra="forbid"),
        __doc__=FeedbackBatchIn.__doc__,
        items=(
            list[item],  # type: ignore[valid-type]
            Field(min_length=1, max_length=max_items, description=f"1 to {max_items} labels."),
        ),
        source=(FeedbackSource, "api"),
    )
    return single, batch


class FeedbackOut(BaseModel):
    label: int
    source: str
    created_at: datetime


class FeedbackStatus(BaseModel):
    status: Literal["stored", "duplicate"]


class FeedbackItemStatus(BaseModel):
    prediction_id: str
    status: Literal["stored", "duplicate", "conflict", "unknown"] = Field(
        description="stored: now its label; duplicate: it already was; conflict: the "
        "prediction already has the other label, which is kept; unknown: no such prediction."
    )


class FeedbackBatchStatus(BaseModel):
    """What became of each label of a batch (in the order sent), and how many of each."""

    stored: int
    duplicate: int
    conflict: int
    unknown: int
    items: list[FeedbackItemStatus]


class PredictionItem(Prediction):
    request: dict[str, Any]
    features: dict[str, Any] | None = Field(
        None, description="The model inputs the prediction was made from (after enrichment)."
    )
    feedback: FeedbackOut | None = None


class PredictionPage(BaseModel):
    items: list[PredictionItem]
    total: int
    next_cursor: str | None = None


class Transition(BaseModel):
    from_stage: str | None
    to_stage: str
    reason: str
    at: datetime


class ModelInfo(BaseModel):
    version: int
    stage: str
    family: str
    metrics: dict[str, Any]
    created_at: datetime
    lineage: dict[str, Any]
    transitions: list[Transition]


class Models(BaseModel):
    models: list[ModelInfo]


class SlotInfo(BaseModel):
    version: str
    weight: int
    healthy: bool


class DecisionInfo(BaseModel):
    decided_at: datetime
    action: str
    weight_before: int
    weight_after: int
    reason: str


class RolloutInfo(BaseModel):
    serving: bool
    endpoint: str | None = None
    stable: SlotInfo | None = None
    canary: SlotInfo | None = None
    decisions: list[DecisionInfo] = Field(default_factory=list)


class CanaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**63 - 1, description="Registry version to canary.")
    percent: int = Field(10, ge=1, le=100)
    reason: str = Field("", max_length=500)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


class FeatureDriftInfo(BaseModel):
    name: str
    score: float | None = None
    threshold: float | None = None
    drifted: bool


class MonitoringReport(BaseModel):
    """One monitoring window: its figures and its reports."""

    window: str
    start: datetime
    end: datetime
    url: str = Field(description="This window's report (HTML).")
    drift_url: str | None = Field(None, description="Evidently's drift report (HTML).")
    rows: int
    labelled: int
    roc_auc: float | None = None
    roc_auc_low: float | None = None
    roc_auc_high: float | None = None
    holdout_roc_auc: float | None = Field(None, description="The reference version's.")
    accuracy: float | None = Field(None, description="Multi-class tasks: labelled accuracy.")
    accuracy_low: float | None = Field(None, description="Its 95 % Wilson interval.")
    accuracy_high: float | None = None
    macro_f1: float | None = None
    holdout_accuracy: float | None = Field(None, description="The reference version's.")
    drift_share: float | None = Field(None, description="Importance-weighted, 0..1.")
    features: list[FeatureDriftInfo] = Field(default_factory=list)


class MonitoringReports(BaseModel):
    reports: list[MonitoringReport]
