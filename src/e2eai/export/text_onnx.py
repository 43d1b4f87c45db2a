"""Text classifiers → ONNX (fp32, parity-checked) and int8 by dynamic quantisation.

The serving contract of a text task's graph: two inputs, ``input_ids`` and
``attention_mask``, int64 ``[N, L]`` (batch and length dynamic), and one output
``probabilities``, float32 ``[N, K]`` (softmax over the classes). Tokenization stays in
Python: :func:`text_feeds` turns raw messages into those inputs with the ``tokenizers``
library and the model's own ``tokenizer.json``, which the export writes beside the graph
with ``text_input.json`` (max length, input and class names), so the predictor needs the
export folder only. The module is exported in eval mode (dropout off).

int8: ONNX Runtime's *dynamic* quantisation (int8 weights of every MatMul, activations
quantised per run), which needs no calibration data. The int8 graph replaces the fp32 one
only if it is smaller and loses at most ``max_macro_f1_loss`` holdout macro-F1 (default one
point); both are scored one message per run, as served (dynamic quantisation picks its
activation scales per run, so batch scoring would not be what a request gets). The decision
carries both macro-F1s, the negative class's recall, both sizes and both batch-1 latencies.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from e2eai.export.compression import CompressionDecision, decide_compressed, median_ms, session
from e2eai.export.parity import ParityReport, check_parity
from e2eai.export.text_tokens import ATTENTION_MASK, INPUT_IDS, TOKENIZER_FILE, MessageTokenizer

if TYPE_CHECKING:
    import pandas as pd

    from e2eai.config import ExportSettings
    from e2eai.export.model_export import ExportResult
    from e2eai.tasks import Task

INPUT_NAMES = (INPUT_IDS, ATTENTION_MASK)
OUTPUT_NAME = "probabilities"
INPUT_SPEC_FILE = "text_input.json"
SERVED_FILE = "model.onnx"
MAX_MACRO_F1_LOSS = 0.01
"""int8 is kept only within one macro-F1 point of fp32 on the holdout."""
PARITY_ATOL = 1e-4
"""Largest allowed |p_onnx - p_torch| over every class of every message compared."""
PARITY_BATCH = 32
PARITY_MESSAGES = 1_000
"""Holdout messages the export stage compares torch and ONNX on (a seeded sample: every
class and length shows up; the whole holdout costs minutes of double inference on CPU)."""


def export_text_classifier(module: Any, out_path: Path) -> Path:
    """Write a MiniLmClassifier (its untrimmed ``logits``) with a softmax on top as one ONNX
    file with dynamic batch and length."""
    import torch

    class _Probabilities(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.inner.logits(input_ids, attention_mask), dim=1)

    wrapper = _Probabilities(module).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    length = torch.export.Dim("length", min=2, max=512)
    example = (
        torch.randint(1000, 20000, (2, 16), dtype=torch.int64),
        torch.ones(2, 16, dtype=torch.int64),
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    program = torch.onnx.export(
        wrapper,
        example,
        input_names=list(INPUT_NAMES),
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch, 1: length}, {0: batch, 1: length}),
        external_data=False,
        dynamo=True,
        verbose=False,
    )
    if program is None:  # only the legacy exporter returns None; dynamo=True never does
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    program.save(str(out_path), external_data=False)
    return out_path


def text_feeds(tokenizer: MessageTokenizer, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Raw messages → the graph's inputs (int64 ``input_ids``/``attention_mask``, padded to
    the batch's longest message): what the predictor calls on a request's texts."""
    return tokenizer.encode(texts)


def served_tokenizer(export_dir: Path) -> MessageTokenizer:
    """The tokenizer an export folder's graph expects (its tokenizer.json and max length)."""
    spec = json.loads((export_dir / INPUT_SPEC_FILE).read_text())
    return MessageTokenizer(export_dir / TOKENIZER_FILE, int(spec["max_length"]))


def onnx_probabilities(
    sess: Any, tokenizer: MessageTokenizer, texts: Sequence[str], batch: int = PARITY_BATCH
) -> np.ndarray:
    """Class probabilities ``[N, K]`` (float64) from a session, ``batch`` messages per run."""
    texts = list(texts)
    out = [
        sess.run([OUTPUT_NAME], text_feeds(tokenizer, texts[i : i + batch]))[0]
        for i in range(0, len(texts), batch)
    ]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


def check_text_parity(
    module: Any,
    onnx_path: Path,
    tokenizer: MessageTokenizer,
    texts: Sequence[str],
    atol: float = PARITY_ATOL,
) -> ParityReport:
    """The graph's probabilities against torch's for the same feeds (raises beyond ``atol``)."""
    import torch

    sess = session(onnx_path)
    texts = list(texts)
    framework, exported = [], []
    module.eval()
    for i in range(0, len(texts), PARITY_BATCH):
        feeds = text_feeds(tokenizer, texts[i : i + PARITY_BATCH])
        with torch.no_grad():
            logits = module.logits(
                torch.from_numpy(feeds[INPUT_IDS]), torch.from_numpy(feeds[ATTENTION_MASK])
            )
        framework.append(torch.softmax(logits, dim=1).double().numpy())
        exported.append(sess.run([OUTPUT_NAME], feeds)[0])
    return check_parity(
        "minilm_finetune", np.concatenate(framework), np.concatenate(exported), atol
    )


def batch1_latency_ms(
    sess: Any, tokenizer: MessageTokenizer, texts: Sequence[str], repeats: int = 200
) -> float:
    """Median wall time of one message, tokenization included (what a served request costs
    the predictor)."""
    texts = list(texts)
    return median_ms(
        lambda i: sess.run(None, text_feeds(tokenizer, [texts[i % len(texts)]])), repeats
    )


def decide_int8(
    fp32_macro_f1: float,
    int8_macro_f1: float,
    fp32_bytes: int,
    int8_bytes: int,
    max_macro_f1_loss: float = MAX_MACRO_F1_LOSS,
) -> CompressionDecision:
    """Keep int8 only if it is smaller and loses at most ``max_macro_f1_loss`` macro-F1."""
    return decide_compressed(
        "macro-F1", fp32_macro_f1, int8_macro_f1, fp32_bytes, int8_bytes, max_macro_f1_loss
    )


@dataclass(frozen=True)
class TextVariantReport:
    """One exported variant's size, batch-1 latency and holdout quality (scored at batch 1)."""

    path: str
    bytes: int
    latency_ms_batch1: float
    macro_f1: float
    accuracy: float
    priority_recall: float | None


@dataclass(frozen=True)
class TextQuantizationReport:
    """fp32 vs int8 and the decision."""

    keep: bool
    reason: str
    fp32: TextVariantReport
    int8: TextVariantReport
    macro_f1_loss: float
    max_macro_f1_loss: float
    rows: int
    top1_agreement: float
    """Share of evaluation messages on which int8 and fp32 predict the same class."""


def quantize_dynamic_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Dynamic int8 quantisation (int8 MatMul weights, activations quantised per run)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
    return int8_path


def _variant(
    path: Path,
    tokenizer: MessageTokenizer,
    texts: list[str],
    y: np.ndarray,
    priority: int | None,
) -> tuple[TextVariantReport, np.ndarray]:
    from sklearn.metrics import f1_score, recall_score

    sess = session(path)
    predicted = onnx_probabilities(sess, tokenizer, texts, batch=1).argmax(axis=1)
    recall = None
    if priority is not None:
        recall = float(
            recall_score(y, predicted, labels=[priority], average=None, zero_division=0)[0]
        )
    report = TextVariantReport(
        path=str(path),
        bytes=path.stat().st_size,
        latency_ms_batch1=batch1_latency_ms(sess, tokenizer, texts),
        macro_f1=float(f1_score(y, predicted, average="macro")),
        accuracy=float((predicted == y).mean()),
        priority_recall=recall,
    )
    return report, predicted


def quantize_and_decide(
    fp32_path: Path,
    tokenizer: MessageTokenizer,
    texts: Sequence[str],
    y: np.ndarray,
    priority: int | None = None,
    max_macro_f1_loss: float = MAX_MACRO_F1_LOSS,
) -> TextQuantizationReport:
    """Quantise ``fp32_path`` dynamically, score both on ``texts``/``y`` at batch 1, decide."""
    int8_path = fp32_path.with_name(fp32_path.name.replace(".onnx", ".int8.onnx"))
    quantize_dynamic_int8(fp32_path, int8_path)
    texts = list(texts)
    fp32, p32 = _variant(fp32_path, tokenizer, texts, y, priority)
    int8, p8 = _variant(int8_path, tokenizer, texts, y, priority)
    decision = decide_int8(fp32.macro_f1, int8.macro_f1, fp32.bytes, int8.bytes, max_macro_f1_loss)
    return TextQuantizationReport(
        keep=decision.keep,
        reason=decision.reason,
        fp32=fp32,
        int8=int8,
        macro_f1_loss=fp32.macro_f1 - int8.macro_f1,
        max_macro_f1_loss=max_macro_f1_loss,
        rows=len(texts),
        top1_agreement=float((p32 == p8).mean()),
    )


@dataclass(frozen=True)
class TextExportReport:
    """What exporting one text model produced: the graph, its parity, the int8 decision."""

    onnx_path: str
    """The fp32 graph (``model.fp32.onnx``)."""
    served_path: str
    """The file to serve, ``model.onnx``: a copy of int8 when kept, else of fp32."""
    tokenizer_path: str
    max_length: int
    parity: ParityReport
    quantization: TextQuantizationReport | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_text_model(
    model: Any,
    out_dir: Path,
    texts: Sequence[str],
    y: np.ndarray,
    class_names: Sequence[str],
    priority_class: str | None = None,
    parity_texts: Sequence[str] | None = None,
    quantize: bool = True,
    max_macro_f1_loss: float = MAX_MACRO_F1_LOSS,
    parity_atol: float = PARITY_ATOL,
) -> TextExportReport:
    """Export a loaded fine-tuned model (``MiniLmFinetuneModel``) to ``out_dir`` with its
    tokenizer and input spec, check parity on ``parity_texts`` (default ``texts``), quantise,
    score both on ``texts``/``y`` and decide. Writes ``model.fp32.onnx``,
    ``model.fp32.int8.onnx``, the served ``model.onnx``, ``tokenizer.json``,
    ``text_input.json`` and ``export_report.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32_path = export_text_classifier(model.module, out_dir / "model.fp32.onnx")
    tokenizer_path = out_dir / TOKENIZER_FILE
    shutil.copyfile(model.tokenizer.path, tokenizer_path)
    max_length = int(model.tokenizer.max_length)
    (out_dir / INPUT_SPEC_FILE).write_text(
        json.dumps(
            {
                "inputs": list(INPUT_NAMES),
                "output": OUTPUT_NAME,
                "max_length": max_length,
                "classes": list(class_names),
                "tokenizer": TOKENIZER_FILE,
            },
            indent=1,
        )
    )
    tokenizer = served_tokenizer(out_dir)
    parity = check_text_parity(
        model.module,
        fp32_path,
        tokenizer,
        parity_texts if parity_texts is not None else texts,
        parity_atol,
    )
    report = None
    if quantize:
        priority = list(class_names).index(priority_class) if priority_class else None
        report = quantize_and_decide(fp32_path, tokenizer, texts, y, priority, max_macro_f1_loss)
    served = out_dir / SERVED_FILE
    chosen = Path(report.int8.path) if report is not None and report.keep else fp32_path
    shutil.copyfile(chosen, served)
    result = TextExportReport(
        str(fp32_path), str(served), str(tokenizer_path), max_length, parity, report
    )
    (out_dir / "export_report.json").write_text(json.dumps(result.to_dict(), indent=1))
    return result


def export_text_model_dir(
    model_dir: Path,
    holdout: pd.DataFrame,
    out_dir: Path,
    settings: ExportSettings,
    task: Task,
    calibration: pd.DataFrame | None = None,
) -> ExportResult:
    """:func:`e2eai.export.model_export.export_model` for a text task's model directory.

    fp32 graph, parity over :data:`PARITY_MESSAGES` holdout messages
    (``settings.parity_atol``), then (with ``settings.quantize``) dynamic int8 kept only
    within :data:`MAX_MACRO_F1_LOSS`, decided on every holdout message;
    ``out_dir/model.onnx`` is the file to serve, with ``tokenizer.json`` and
    ``text_input.json`` beside it. ``calibration`` is not used: dynamic int8 needs none.
    """
    from e2eai.errors import ModelArtifactError
    from e2eai.export.model_export import ExportResult
    from e2eai.serving.text_inputs import embed_tokenizer
    from e2eai.storage import sha256_file
    from e2eai.training.families import load_model
    from e2eai.training.minilm_families import MiniLmFinetuneModel
    from e2eai.training.multiclass_model import frame_labels
    from e2eai.training.text_families import frame_texts

    model = load_model(model_dir)
    if not isinstance(model, MiniLmFinetuneModel):
        raise ModelArtifactError(f"{model_dir}: not a fine-tuned text encoder ({model.family})")
    class_names = tuple(getattr(task, "classes", ()))
    sample = holdout.sample(min(len(holdout), PARITY_MESSAGES), random_state=0)
    report = export_text_model(
        model,
        out_dir,
        frame_texts(holdout),
        frame_labels(holdout, task.label, len(class_names)),
        class_names,
        getattr(task, "priority_class", None),
        parity_texts=frame_texts(sample),
        quantize=settings.quantize,
        parity_atol=settings.parity_atol,
    )
    served = Path(report.served_path)
    # One served file: the tokenizer and its maximum length travel in the graph's metadata.
    embed_tokenizer(served, Path(report.tokenizer_path), report.max_length)
    return ExportResult(
        family=model.family,
        onnx_path=served,
        sha256=sha256_file(served),
        fp32_path=Path(report.onnx_path),
        parity=report.parity,
        quantization=report.quantization,  # type: ignore[arg-type]
    )
