"""The in-process enrichment: a task's raw requests → Feast online features → the ORT feed.

KServe's preprocess step, as an object the predictor calls (``--enrich``) or the separate
transformer (:mod:`e2eai.serving.transformer`) wraps. The model input comes from the task's
``online_model_columns``, built by the code that builds the training rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from e2eai.serving.requests import columns_of, request_columns

if TYPE_CHECKING:
    from e2eai.config import Settings
    from e2eai.tasks import Task


class Enricher:
    """The task's requests → Feast online features → the model's ORT feed (as in training)."""

    def __init__(self, settings: Settings, task: Task, *, warm: bool = True) -> None:
        """``warm``: open the Feast store now (seconds), so the first request does not."""
        self.settings = settings
        self.task = task
        self.max_rows = settings.serving.max_batch_rows
        self.request_names = frozenset(f.name for f in task.request_fields)
        if warm:
            task.warm_online_store(settings)

    def accepts(self, names: Any) -> bool:
        """Whether a request with these field names is a raw request (not model inputs)."""
        return set(names) == self.request_names

    def model_input(self, request: Any) -> dict[str, np.ndarray]:
        """The model-input columns for a request (V1 instances or V2 tensors)."""
        requests = request_columns(self.task.request_fields, columns_of(request), self.max_rows)
        return self.task.online_model_columns(self.settings, requests)

    def __call__(self, request: Any) -> dict[str, np.ndarray]:
        feed: dict[str, np.ndarray] = {}
        for name, values in self.model_input(request).items():
            if values.dtype == object:
                # The ONNX graph takes the empty string as the unknown category.
                values = np.array(["" if v is None else v for v in values], dtype=object)
            feed[name] = values.reshape(-1, 1)
        return feed
