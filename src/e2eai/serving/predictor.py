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
from e2eai.export.explanation import CONTRIBUTIONS, Explanation, read_explanation
from e2eai.serving.image_inputs import ImageInputs
from e2eai.serving.text_inputs import TextInputs
from e2eai.serving.validation import InputSpec, ModelInputs, Tensor, model_input_specs

if TYPE_CHECKING:
    from e2eai.config import Settings
    from e2eai.serving.enricher import Enricher
    from e2eai.tasks import Task

OUTPUT_NAME = "probability"
log = logging.getLogger(__name__)


class RejectedRequest(InvalidInput):
    """A schema violation as kserve's ``InvalidInput`` (gRPC INVALID_ARGUMENT), with its HTTP
    status (400, or 413 for oversized requests)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


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
        self.image_shape: tuple[int, int, int] | None = None
        self.classes = 0  # 0: one probability per row (binary); K: class probabilities
        self.inputs: ModelInputs | ImageInputs | TextInputs
        self.text = task.modality == "text"
        if self.text:
            self.classes = int(getattr(task, "num_classes", 0))
            self.inputs = TextInputs(self.specs[0].name, int(getattr(task, "max_chars", 1000)))
            enricher = None  # the message arrives whole: nothing to look up
        elif task.modality == "image":
            self.image_shape = tuple(getattr(task, "image_shape", (1, 28, 28)))  # type: ignore[assignment]
            self.classes = int(getattr(task, "num_classes", 0))
            self.inputs = ImageInputs(self.specs[0].name, self.image_shape)
            enricher = None  # the image arrives whole: nothing to look up
        else:
            self.inputs = ModelInputs(self.specs)
        self.enricher = enricher
        self.onnx: OnnxModel | None = None

    def load(self) -> bool:
        from e2eai.export.image_onnx import OUTPUT_NAME as IMAGE_OUTPUT

        if self.text:
            from e2eai.serving.text_inputs import tokenizer_of

            tokens = {"input_ids": "tensor(int64)", "attention_mask": "tensor(int64)"}
            self.onnx = OnnxModel(self.model_path, self.specs, "probabilities", tokens)
            metadata = self.onnx.session.get_modelmeta().custom_metadata_map
            self.inputs.tokenizer = tokenizer_of(  # type: ignore[union-attr]
                metadata, self.model_path.parent / f"{self.model_path.stem}.tokenizer"
            )
        else:
            output = IMAGE_OUTPUT if self.image_shape is not None else OUTPUT_NAME
            self.onnx = OnnxModel(self.model_path, self.specs, output)
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:
        if self.text:
            return [{"name": self.specs[0].name, "datatype": "BYTES", "shape": [-1]}]
        if self.image_shape is not None:
            return [
                {"name": self.specs[0].name, "datatype": "FP32", "shape": [-1, *self.image_shape]}
            ]
        return [{"name": s.name, "datatype": s.v2_datatype, "shape": [-1, 1]} for s in self.specs]

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
        """The V1 ``explain`` answer: predictions, the model inputs used (``features``, after
        enrichment) and per row what moved its logit.

        Each explanation is ``{"base_value", "contributions": [{"feature", "contribution"}]}``,
        largest first by size, where the contributions add up with the base value to the
        row's logit; ``explanations`` is null for a graph without them. Image models explain
        by occlusion instead: per image the predicted class and a saliency map at the image's
        resolution (:mod:`e2eai.serving.saliency`); ``features`` is then left out (it would
        only repeat the pixels).
        """
        if self.text:
            from e2eai.serving.saliency import token_occlusion

            assert self.onnx is not None, "load() first"
            probability = self.run(feed)
            answer = self.v1_response(probability)
            answer["explanations"] = token_occlusion(
                self.onnx.predict,
                feed,
                probability,
                self.inputs.tokenizer.id_to_token,  # type: ignore[union-attr]
            )
            return answer
        if self.image_shape is not None:
            from e2eai.serving.saliency import occlusion_saliency

            assert self.onnx is not None, "load() first"
            images = next(iter(feed.values()))
            probability = self.run(feed)
            answer = self.v1_response(probability)
            answer["explanations"] = occlusion_saliency(
                lambda batch: self.onnx.predict({self.specs[0].name: batch}),  # type: ignore[union-attr]
                images,
                probability,
            )
            return answer
        probability, contributions = self.run_explained(feed)
        answer = self.v1_response(probability)
        answer["features"] = feature_rows(feed)
        explanation = self.explanation
        if contributions is None or explanation is None:
            answer["explanations"] = None
            return answer
        answer["explanations"] = explain_rows(explanation, contributions)
        return answer

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
