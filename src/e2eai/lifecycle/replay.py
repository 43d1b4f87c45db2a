"""Replayed traffic through the router: one row per request, labels fed back after the
outcomes are known, canary analysis deciding after each batch; every answer is kept as the
app would log it, for the cycle's monitoring pass."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from e2eai.config import Settings
from e2eai.lifecycle.record import LoopRecord, Progress

if TYPE_CHECKING:
    from e2eai.app.store import LoggedPrediction
    from e2eai.serving.canary_analysis import CanaryPolicy
    from e2eai.tasks import Task

REPLAY_BATCH = 250
"""Flights sent between two rounds of feedback and analysis."""


def replay_through_router(
    settings: Settings,
    policy: CanaryPolicy,
    rows: pd.DataFrame,
    record: LoopRecord,
    progress: Progress,
) -> list[LoggedPrediction]:
    """Send rows through the router one by one, feed labels back, let analysis decide.

    Every decision is appended to ``record.canary``; ``record.outcome`` says how it ended
    (promoted, rolled back, or traffic ran out with the canary kept). Returns every answer
    with its label, as the app's prediction log would hold it.
    """
    import httpx

    from e2eai.app.store import LoggedPrediction
    from e2eai.serving.client import v2_probabilities, v2_request
    from e2eai.serving.local import LocalServing
    from e2eai.tasks import load_task

    serving = LocalServing(settings, policy=policy)
    url = f"{serving.state().endpoint}/v2/models/{settings.serving.model_name}/infer"
    task = load_task(settings)
    served: list[LoggedPrediction] = []
    with httpx.Client(timeout=10.0) as client:
        for offset in range(0, len(rows), REPLAY_BATCH):
            chunk = rows.iloc[offset : offset + REPLAY_BATCH]
            feedback = []
            for i in range(len(chunk)):
                one = chunk.iloc[i : i + 1]
                request_id = str(one[task.row_id].iloc[0])
                response = client.post(
                    url, json=v2_request(one, task), headers={"x-request-id": request_id}
                )
                response.raise_for_status()
                label = int(one[task.label].iloc[0])
                feedback.append({"request_id": request_id, "labels": [label]})
                (answer,) = v2_probabilities(response.json())
                served.append(
                    LoggedPrediction(
                        id=request_id,
                        event_time=datetime.now(UTC),
                        model_version=response.headers.get("x-e2eai-version", ""),
                        slot=response.headers.get("x-e2eai-slot", ""),
                        probability=max(answer) if isinstance(answer, list) else answer,
                        features=_model_inputs(one, task),
                        label=label,
                        request=_asked(one, task),
                        predicted_class=(
                            answer.index(max(answer)) if isinstance(answer, list) else None
                        ),
                        class_probabilities=answer if isinstance(answer, list) else None,
                    )
                )
            # Ground truth arrives after the flights land.
            matched = serving.feedback(feedback)["matched"]
            if matched != len(feedback):
                raise RuntimeError(f"router matched {matched} of {len(feedback)} labels")
            decision = serving.analyze(apply=True)
            record.canary.append(decision.model_dump(mode="json"))
            progress(
                f"replayed {offset + len(chunk)}/{len(rows)} requests: {decision.action} "
                f"({decision.weight_before}% → {decision.weight_after}%)"
            )
            if decision.action in ("promote", "rollback"):
                verb = "promoted" if decision.action == "promote" else "rolled back"
                record.outcome = f"challenger {verb}: {decision.reason}"
                return served
    record.outcome = "traffic ran out before the analysis could decide (canary kept)"
    return served


def _model_inputs(row: pd.DataFrame, task: Task) -> dict[str, Any] | None:
    """A tabular row's model inputs as the app logs them (missing values as None)."""
    if task.modality != "tabular":
        return None
    values = row.iloc[0]
    return {f.name: (None if pd.isna(values[f.name]) else values[f.name]) for f in task.features}


def _asked(row: pd.DataFrame, task: Task) -> dict[str, Any] | None:
    """What the app stores of an image or text request: the model-sized PNG, or the message."""
    field = task.request_fields[0].name
    if task.modality == "text":
        return {field: str(row[task.features[0].name].iloc[0])}
    if task.modality == "image":
        from e2eai.app.image_upload import png_base64
        from e2eai.training.image_families import frame_images

        shape = tuple(getattr(task, "image_shape", (1, 28, 28)))
        return {field: {"b64": png_base64(frame_images(row, shape[1:])[0])}}
    return None
