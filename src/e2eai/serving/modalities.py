"""What the predictor does differently for tabular rows, images and messages.

The predictor (:class:`e2eai.serving.predictor.OnnxPredictor`) is one ``kserve.Model`` for
every task; everything that depends on the task's input modality is here, one class each:
how requests become the graph's feed (the modality's validating inputs), the V2 input types
it declares, how its graph is opened, how many classes it answers (0: one probability per
row) and how it explains an answer:

- tabular rows: one input per feature, enriched from the feature store when a transformer
  runs in-process; explained by the graph's own per-feature contributions;
- images: one ``FP32`` tensor ``[N, C, H, W]`` (or uploaded PNG/JPEG files); explained by
  occlusion saliency (:mod:`e2eai.serving.saliency`);
- messages: one ``BYTES`` input of raw text, tokenized by the tokenizer embedded in the
  graph's metadata; explained by word-piece occlusion.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from e2eai.serving.image_inputs import ImageInputs
from e2eai.serving.onnx_model import OUTPUT_NAME, OnnxModel, explain_rows, feature_rows
from e2eai.serving.text_inputs import TextInputs
from e2eai.serving.validation import InputSpec, ModelInputs

if TYPE_CHECKING:
    from e2eai.tasks import Task

Explained = tuple[np.ndarray, dict[str, Any]]
"""(probabilities, the answer's explanation fields)."""


class TabularModality:
    """One input per feature; the graph's contributions explain it."""

    enriched: ClassVar[bool] = True
    """Raw requests may be enriched from the feature store before validation."""

    def __init__(self, task: Task, specs: tuple[InputSpec, ...]) -> None:
        self.specs = specs
        self.classes = 0
        self.inputs: ModelInputs | ImageInputs | TextInputs = ModelInputs(specs)

    def input_types(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "datatype": s.v2_datatype, "shape": [-1, 1]} for s in self.specs]

    def open(self, path: Path) -> OnnxModel:
        return OnnxModel(path, self.specs, OUTPUT_NAME)

    def explain(self, onnx: OnnxModel, feed: dict[str, np.ndarray]) -> Explained:
        """The model inputs used (``features``, after enrichment) and per row what moved its
        logit (None for a graph without contributions)."""
        fields: dict[str, Any] = {"features": feature_rows(feed), "explanations": None}
        if onnx.explanation is None:
            return onnx.predict(feed), fields
        probability, contributions = onnx.predict_explained(feed)
        fields["explanations"] = explain_rows(onnx.explanation, contributions)
        return probability, fields


class ImageModality(TabularModality):
    """One image tensor per row; occlusion saliency explains it."""

    enriched: ClassVar[bool] = False

    def __init__(self, task: Task, specs: tuple[InputSpec, ...]) -> None:
        super().__init__(task, specs)
        self.shape: tuple[int, int, int] = tuple(getattr(task, "image_shape", (1, 28, 28)))  # type: ignore[assignment]
        self.classes = int(getattr(task, "num_classes", 0))
        self.inputs = ImageInputs(specs[0].name, self.shape)

    def input_types(self) -> list[dict[str, Any]]:
        return [{"name": self.specs[0].name, "datatype": "FP32", "shape": [-1, *self.shape]}]

    def open(self, path: Path) -> OnnxModel:
        from e2eai.export.image_onnx import OUTPUT_NAME as IMAGE_OUTPUT

        return OnnxModel(path, self.specs, IMAGE_OUTPUT)

    def explain(self, onnx: OnnxModel, feed: dict[str, np.ndarray]) -> Explained:
        """Per image the predicted class and a saliency map at the image's resolution (the
        pixels are not repeated as ``features``)."""
        from e2eai.serving.saliency import occlusion_saliency

        name = self.specs[0].name
        probability = onnx.predict(feed)
        saliency = occlusion_saliency(
            lambda batch: onnx.predict({name: batch}), feed[name], probability
        )
        return probability, {"explanations": saliency}


class TextModality(TabularModality):
    """One message per row, tokenized in the predictor; word-piece occlusion explains it."""

    enriched: ClassVar[bool] = False

    def __init__(self, task: Task, specs: tuple[InputSpec, ...]) -> None:
        super().__init__(task, specs)
        self.classes = int(getattr(task, "num_classes", 0))
        self.text_inputs = TextInputs(specs[0].name, int(getattr(task, "max_chars", 1000)))
        self.inputs = self.text_inputs

    def input_types(self) -> list[dict[str, Any]]:
        return [{"name": self.specs[0].name, "datatype": "BYTES", "shape": [-1]}]

    def open(self, path: Path) -> OnnxModel:
        """The graph over token ids, and the tokenizer its metadata embeds."""
        from e2eai.serving.text_inputs import tokenizer_of

        tokens = {"input_ids": "tensor(int64)", "attention_mask": "tensor(int64)"}
        onnx = OnnxModel(path, self.specs, "probabilities", tokens)
        metadata = onnx.session.get_modelmeta().custom_metadata_map
        self.text_inputs.tokenizer = tokenizer_of(metadata, path.parent / f"{path.stem}.tokenizer")
        return onnx

    def explain(self, onnx: OnnxModel, feed: dict[str, np.ndarray]) -> Explained:
        """Per message the predicted class and each word piece's attribution."""
        from e2eai.serving.saliency import token_occlusion

        probability = onnx.predict(feed)
        tokens = token_occlusion(
            onnx.predict, feed, probability, self.text_inputs.tokenizer.id_to_token
        )
        return probability, {"explanations": tokens}


Modality = TabularModality
_BY_NAME: dict[str, type[TabularModality]] = {"image": ImageModality, "text": TextModality}


def modality_of(task: Task, specs: tuple[InputSpec, ...]) -> Modality:
    """The serving behaviour of ``task``'s modality (tabular unless it names another)."""
    return _BY_NAME.get(getattr(task, "modality", "tabular"), TabularModality)(task, specs)
