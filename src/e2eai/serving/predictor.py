"""The predictor: a small ``kserve.Model`` that runs the registered ONNX model in ONNX Runtime.

Protocol handling stays with kserve (V1, V2 REST, gRPC, health, metadata); this class only
validates inputs against the task's schema and runs the graph. Feature lookup for raw
requests is the transformer's job (:mod:`e2eai.serving.transformer`), plugged in as
``enricher`` when it runs in the same process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from e2eai.errors import InvalidInferenceRequest, ServingError
from e2eai.export.explanation import CONTRIBUTIONS, Explanation
from e2eai.serving.modalities import modality_of
from e2eai.serving.onnx_model import (
    OUTPUT_NAME,
    OnnxModel,
    explain_rows,
    feature_rows,
)
from e2eai.serving.validation import Tensor, model_input_specs

if TYPE_CHECKING:
    from e2eai.config import Settings
    from e2eai.serving.enricher import Enricher
    from e2eai.serving.image_inputs import ImageInputs
    from e2eai.serving.text_inputs import TextInputs
    from e2eai.serving.validation import ModelInputs
    from e2eai.tasks import Task

__all__ = ["OUTPUT_NAME", "OnnxModel", "OnnxPredictor", "explain_rows", "feature_rows"]
log = logging.getLogger(__name__)


class RejectedRequest(InvalidInput):
    """A schema violation as kserve's ``InvalidInput`` (gRPC INVALID_ARGUMENT), with its HTTP
    status (400, or 413 for oversized requests)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def resolve_model_path(
    settings: Settings, *, version: int | None, path: Path | None, cache_dir: Path
) -> Path:
    """The local ONNX file to serve: ``path`` as given, or the registry's ``model.onnx``.

    Registry artifacts are fetched with their sha256 verified (``ArtifactIntegrityError`` on
    mismatch), so a tampered model is never loaded.
    """
    if path is not None:
        if not Path(path).is_file():
            raise ServingError(f"{path}: no such ONNX file")
        return Path(path)
    if version is None:
        raise ServingError("give a model version (registry) or an ONNX path")
    from e2eai.registry import ModelRegistry

    registry = ModelRegistry.from_settings(settings)
    return registry.fetch_artifact(version, "model.onnx", cache_dir / f"v{version}")


class OnnxPredictor(Model):
    """KServe model: inputs validated against the task → ONNX Runtime → ``probability``.

    ``enricher`` (optional) turns the task's raw requests into model inputs in-process
    (KServe's preprocess step); without it the predictor expects the model inputs themselves.
    """

    def __init__(
        self,
        name: str,
        model_path: Path,
        task: Task,
        *,
        model_version: str = "",
        max_batch_rows: int = 4096,
        enricher: Enricher | None = None,
    ) -> None:
        super().__init__(name)
        self.model_path = Path(model_path)
        self.model_version = model_version
        self.max_batch_rows = max_batch_rows
        self.specs = model_input_specs(task)
        self.modality = modality_of(task, self.specs)
        self.classes = self.modality.classes  # 0: one probability per row; K: class probabilities
        # An image or a message arrives whole: nothing to look up.
        self.enricher = enricher if self.modality.enriched else None
        self.onnx: OnnxModel | None = None

    @property
    def inputs(self) -> ModelInputs | ImageInputs | TextInputs:
        return self.modality.inputs

    def load(self) -> bool:
        self.onnx = self.modality.open(self.model_path)
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:
        return self.modality.input_types()

    def get_output_types(self) -> list[dict[str, Any]]:
        shape = [-1, self.classes] if self.classes else [-1]
        outputs = [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": shape}]
        if self.explanation is not None:
            width = len(self.explanation.features)
            outputs.append({"name": CONTRIBUTIONS, "datatype": "FP32", "shape": [-1, width]})
        return outputs

    @property
    def explanation(self) -> Explanation | None:
        """What the served graph's ``contributions`` are (None: it does not explain)."""
        return None if self.onnx is None else self.onnx.explanation

    # -- the request path -------------------------------------------------------------------

    def feed_from_tensors(self, tensors: list[Tensor]) -> dict[str, np.ndarray]:
        if self.enricher is not None and self.enricher.accepts(t.name for t in tensors):
            return self.enricher(tensors)
        return self.inputs.feed_from_tensors(tensors, self.max_batch_rows)

    def feed_from_instances(self, instances: Any) -> dict[str, np.ndarray]:
        if (
            self.enricher is not None
            and isinstance(instances, list)
            and instances
            and isinstance(instances[0], dict)
            and self.enricher.accepts(instances[0])
        ):
            return self.enricher(instances)
        return self.inputs.feed_from_instances(instances, self.max_batch_rows)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        assert self.onnx is not None, "load() first"
        return self.onnx.predict(feed)

    def run_explained(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, contributions or None when the graph does not explain)."""
        assert self.onnx is not None, "load() first"
        if self.onnx.explanation is None:
            return self.onnx.predict(feed), None
        return self.onnx.predict_explained(feed)

    def v1_response(self, probability: np.ndarray) -> dict[str, Any]:
        """The V1 ``predict`` answer for these probabilities."""
        return {"predictions": probability.tolist(), "model_version": self.model_version}

    def v1_explanation(self, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        """The V1 ``explain`` answer: predictions and the modality's explanation fields.

        Tabular rows: ``features`` (the model inputs used, after enrichment) and per row
        ``{"base_value", "contributions": [{"feature", "contribution"}]}``, largest first by
        size, adding up with the base value to the row's logit (``explanations`` null for a
        graph without them). Images: per image the predicted class and an occlusion saliency
        map at the image's resolution. Messages: per message each word piece's attribution
        (:mod:`e2eai.serving.modalities`).
        """
        assert self.onnx is not None, "load() first"
        probability, fields = self.modality.explain(self.onnx, feed)
        return {**self.v1_response(probability), **fields}

    def _requested(self, requested: Any) -> set[str]:
        """Output names a V2/gRPC request asks for (``probability`` when it names none)."""
        have = {OUTPUT_NAME} if self.explanation is None else {OUTPUT_NAME, CONTRIBUTIONS}
        names = {str(getattr(o, "name", "")) for o in requested or []}
        unknown = sorted(names - have)
        if unknown:
            raise InvalidInferenceRequest(
                "outputs", f"the model has no output {unknown[0][:60]!r} ({sorted(have)})"
            )
        return names or {OUTPUT_NAME}

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """kserve's V1 ``:explain`` route (the fast path answers it first when it runs)."""
        try:
            if not isinstance(payload, dict) or "instances" not in payload:
                raise InvalidInferenceRequest("instances", "V1 body must be {'instances': [...]}")
            return self.v1_explanation(self.feed_from_instances(payload["instances"]))
        except InvalidInferenceRequest as exc:
            raise as_kserve_error(exc) from None

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """V2/gRPC ``InferRequest`` → ``InferResponse``; V1 ``{"instances": …}`` → predictions."""
        try:
            if isinstance(payload, InferRequest):
                tensors = [_tensor_from_infer_input(i) for i in payload.inputs]
                wanted = self._requested(payload.request_outputs)
                probability, contributions = (
                    self.run_explained(self.feed_from_tensors(tensors))
                    if CONTRIBUTIONS in wanted
                    else (self.run(self.feed_from_tensors(tensors)), None)
                )
                outputs = []
                for name, values in ((OUTPUT_NAME, probability), (CONTRIBUTIONS, contributions)):
                    if name in wanted and values is not None:
                        output = InferOutput(name, list(values.shape), "FP32")
                        output.set_data_from_numpy(values, binary_data=payload.from_grpc)
                        outputs.append(output)
                # The V2 response id echoes the request's; kserve's model requires a string.
                response_id = payload.id or (headers or {}).get("x-request-id") or uuid4().hex
                return InferResponse(
                    response_id,
                    self.name,
                    outputs,
                    model_version=self.model_version,
                    from_grpc=payload.from_grpc,
                )
            if not isinstance(payload, dict) or "instances" not in payload:
                raise InvalidInferenceRequest("instances", "V1 body must be {'instances': [...]}")
            return self.v1_response(self.run(self.feed_from_instances(payload["instances"])))
        except InvalidInferenceRequest as exc:
            raise as_kserve_error(exc) from None


def _tensor_from_infer_input(infer_input: Any) -> Tensor:
    raw = getattr(infer_input, "_raw_data", None)
    return Tensor(
        infer_input.name,
        infer_input.datatype,
        tuple(int(d) for d in infer_input.shape),
        data=None if raw is not None else _plain(infer_input.data),
        raw=raw,
    )


def _plain(data: Any) -> Any:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).tolist()
    if data is not None and not isinstance(data, list):
        return list(data)  # protobuf repeated containers from gRPC contents
    return data


def as_kserve_error(exc: InvalidInferenceRequest) -> RejectedRequest:
    """kserve's ``InvalidInput`` (HTTP 400, gRPC INVALID_ARGUMENT) carrying our status."""
    return RejectedRequest(str(exc), exc.status)
