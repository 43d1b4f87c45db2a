"""The served graph in ONNX Runtime, and what its answers are made of.

:class:`OnnxModel` is one single-threaded session over a graph that keeps the serving
contract: one input per task feature (or a text encoder's token ids), a ``probability``
output (or an image/text graph's class probabilities) and, when the graph explains itself,
``contributions``. :func:`explain_rows` and :func:`feature_rows` turn a tabular graph's
contributions and inputs into JSON-ready explanations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from e2eai.errors import ServingError
from e2eai.export.explanation import CONTRIBUTIONS, Explanation, read_explanation
from e2eai.serving.validation import InputSpec

OUTPUT_NAME = "probability"


class OnnxModel:
    """An ONNX Runtime session over a contract-conforming model (one input per feature)."""

    def __init__(
        self,
        path: Path,
        specs: tuple[InputSpec, ...],
        output: str = OUTPUT_NAME,
        graph_inputs: dict[str, str] | None = None,
    ) -> None:
        """``graph_inputs`` (name → ONNX type): the graph's inputs when they are not the
        task's features (a text encoder's token ids); None: one input per spec."""
        import onnxruntime as ort

        self.path = Path(path)
        self.specs = specs
        self.output = output
        self.graph_inputs = graph_inputs
        options = ort.SessionOptions()
        # One thread each: the server process owns one core; ORT's pool would fight uvicorn.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ServingError(f"{self.path}: not a loadable ONNX model ({exc})") from exc
        self._check_contract()
        self.explanation: Explanation | None = read_explanation(
            self.session.get_modelmeta().custom_metadata_map,
            {o.name for o in self.session.get_outputs()},
        )

    def _check_contract(self) -> None:
        graph_inputs = {i.name: i.type for i in self.session.get_inputs()}
        if self.graph_inputs is not None:
            if graph_inputs != self.graph_inputs:
                raise ServingError(
                    f"{self.path}: ONNX inputs {graph_inputs} are not {self.graph_inputs}"
                )
            if self.output not in {o.name for o in self.session.get_outputs()}:
                raise ServingError(f"{self.path}: ONNX graph has no output {self.output!r}")
            return
        for spec in self.specs:
            expected = "tensor(float)" if spec.kind == "numeric" else "tensor(string)"
            if spec.name not in graph_inputs:
                raise ServingError(f"{self.path}: ONNX graph has no input {spec.name!r}")
            if graph_inputs[spec.name] != expected:
                raise ServingError(
                    f"{self.path}: input {spec.name!r} is {graph_inputs[spec.name]}, "
                    f"expected {expected}"
                )
        extra = sorted(set(graph_inputs) - {s.name for s in self.specs})
        if extra:
            raise ServingError(f"{self.path}: ONNX inputs not in the task's schema: {extra}")
        if self.output not in {o.name for o in self.session.get_outputs()}:
            raise ServingError(f"{self.path}: ONNX graph has no output {self.output!r}")

    def predict(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """P(positive) per row, float32 ``[N]``; a multi-class graph's ``[N, K]`` as it is."""
        (probability,) = self.session.run([self.output], feed)
        return _probability_rows(probability)

    def predict_explained(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(P(positive) [N], contributions [N, K]) from one run; the graph must explain."""
        probability, contributions = self.session.run([OUTPUT_NAME, CONTRIBUTIONS], feed)
        return (
            np.asarray(probability, dtype=np.float32).reshape(-1),
            np.asarray(contributions, dtype=np.float32),
        )


def _probability_rows(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim == 2 and array.shape[1] > 1:
        return array  # class probabilities
    return array.reshape(-1)


def explain_rows(explanation: Explanation, contributions: np.ndarray) -> list[dict[str, Any]]:
    """Per row: the base value and every column's contribution, largest first by size.

    The inputs' values are not repeated here: they are the answer's ``features``.
    """
    names = explanation.features
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")
    amounts = contributions.astype(np.float64).tolist()
    base = explanation.base_value
    return [
        {
            "base_value": base,
            "contributions": [{"feature": names[k], "contribution": row[k]} for k in ranked],
        }
        for ranked, row in zip(order.tolist(), amounts, strict=True)
    ]


def feature_rows(feed: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The model inputs of every row as JSON-ready ``{feature: value}`` (None = missing)."""
    columns = {name: _input_values(column) for name, column in feed.items()}
    rows = len(next(iter(feed.values()))) if feed else 0
    return [{name: values[i] for name, values in columns.items()} for i in range(rows)]


def _input_values(column: np.ndarray | None) -> list[Any] | None:
    """A feed column as JSON-ready values: NaN and "" (missing) become None."""
    if column is None:
        return None
    if column.ndim > 2:  # an image per row: its nested intensities
        return column.tolist()
    values = column.reshape(-1).tolist()
    return [None if v == "" or (isinstance(v, float) and v != v) else v for v in values]
