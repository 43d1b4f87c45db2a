"""Replayed traffic through the router: one flight per request, labels fed back after the
flights land, canary analysis deciding after each batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from e2eai.config import Settings
from e2eai.lifecycle.record import LoopRecord, Progress

if TYPE_CHECKING:
    from e2eai.serving.canary_analysis import CanaryPolicy

REPLAY_BATCH = 250
"""Flights sent between two rounds of feedback and analysis."""


def replay_through_router(
    settings: Settings,
    policy: CanaryPolicy,
    rows: pd.DataFrame,
    record: LoopRecord,
    progress: Progress,
) -> None:
    """Send flights through the router one by one, feed labels back, let analysis decide.

    Every decision is appended to ``record.canary``; ``record.outcome`` says how it ended
    (promoted, rolled back, or traffic ran out with the canary kept).
    """
    import httpx

    from e2eai.serving.client import v2_request
    from e2eai.serving.local import LocalServing
    from e2eai.tasks import load_task

    serving = LocalServing(settings, policy=policy)
    url = f"{serving.state().endpoint}/v2/models/{settings.serving.model_name}/infer"
    task = load_task(settings)
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
                return
    record.outcome = "traffic ran out before the analysis could decide (canary kept)"
