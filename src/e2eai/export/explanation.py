"""The explanation contract of a served graph: a ``contributions`` output and its metadata.

A graph that explains itself has a second output, ``contributions`` [N, K] float32, and a
metadata entry ``e2eai.explanation`` (JSON) naming its K columns and the base value, with
``base_value + contributions.sum(1) == logit(probability)`` for every row. Export writes it
(:mod:`e2eai.export.torch_onnx`); the predictor reads it (:func:`read_explanation`) and
answers V1 ``:explain`` and V2 requests that ask for the output. A graph without it (the
scikit-learn families) predicts but does not explain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

CONTRIBUTIONS = "contributions"
"""Name of the graph output holding the per-input contributions to the logit."""
METADATA_KEY = "e2eai.explanation"


@dataclass(frozen=True)
class Explanation:
    """What the columns of ``contributions`` are and what they add up from.

    ``base_value`` is the mean logit over ``reference_rows`` rows (the export's holdout);
    ``term_means`` (export only) are the per-column means the graph subtracts.
    """

    features: list[str]
    base_value: float
    reference_rows: int = 0
    term_means: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def metadata(self) -> str:
        return json.dumps(
            {
                "output": CONTRIBUTIONS,
                "features": self.features,
                "base_value": self.base_value,
                "scale": "logit",
                "reference_rows": self.reference_rows,
            }
        )


def write_explanation(model: onnx.ModelProto, explanation: Explanation) -> None:
    """Record ``explanation`` in the model's metadata (replacing an earlier record)."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, explanation.metadata()


def read_explanation(metadata: dict[str, str], output_names: set[str]) -> Explanation | None:
    """The explanation a loaded graph declares, or None (no record, or no such output)."""
    raw = metadata.get(METADATA_KEY)
    if raw is None or CONTRIBUTIONS not in output_names:
        return None
    record: dict[str, Any] = json.loads(raw)
    return Explanation(
        features=[str(f) for f in record["features"]],
        base_value=float(record["base_value"]),
        reference_rows=int(record.get("reference_rows", 0)),
    )
