"""torch MLP → ONNX, with the category lookup composed in front as ai.onnx.ml LabelEncoders.

The exported torch graph takes ``numeric`` [N, F] float32 and ``category_index`` [N, C]
int64 (imputation and normalisation are module buffers inside it). A small prefix graph
turns the per-feature inputs of the contract into those two tensors: Concat of the numeric
columns and, per categorical feature, a LabelEncoder (string → index, unknown → 0).

A wide model exported with reference rows also outputs ``contributions`` [N, F + C + 1]: its
logit split by input (:meth:`~e2eai.training.mlp.TabularMLP.terms`), each column centred on
its mean over the reference rows, so that ``base_value + contributions.sum(1)`` is the logit
of ``probability`` — the same graph computes both, so the identity holds for the int8 model
too. The names and the base value are in the model's metadata (:mod:`e2eai.export.explanation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from e2eai.export.explanation import CONTRIBUTIONS, Explanation, write_explanation
from e2eai.export.signature import OUTPUT_NAME, input_signature
from e2eai.training.mlp import TabularMLP
from e2eai.training.tabular_spec import TabularSpec

if TYPE_CHECKING:
    import pandas as pd

    from e2eai.tasks import Task

_ML_DOMAIN = "ai.onnx.ml"
_ML_OPSET = 3  # LabelEncoder with keys_strings / values_int64s / default_int64


class _ProbabilityModule(torch.nn.Module):
    """The MLP with a sigmoid on top: the exported graph outputs probabilities."""

    def __init__(self, model: TabularMLP) -> None:
        super().__init__()
        self.model = model

    def forward(self, numeric: torch.Tensor, category_index: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(numeric, category_index))


class _ExplainedModule(torch.nn.Module):
    """Probability and centred contributions from the same split of the logit."""

    def __init__(self, model: TabularMLP, term_means: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("term_means", torch.from_numpy(term_means.astype(np.float32)))

    def forward(
        self, numeric: torch.Tensor, category_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        terms = self.model.terms(numeric, category_index)
        logit = terms.sum(dim=1) + self.model.wide_dense.bias
        return torch.sigmoid(logit), terms - self.term_means


@torch.no_grad()
def explanation_of(model: TabularMLP, spec: TabularSpec, reference: pd.DataFrame) -> Explanation:
    """The term names, their means over ``reference`` and the base value (the mean logit)."""
    model.eval()
    numeric, indices = spec.encode(reference)
    terms = model.terms(torch.from_numpy(numeric), torch.from_numpy(indices)).double()
    means = terms.mean(dim=0).numpy()
    return Explanation(
        features=model.term_names(spec),
        base_value=float(model.wide_dense.bias.double().item() + means.sum()),
        term_means=means,
        reference_rows=len(reference),
    )


def _export_core(
    model: TabularMLP, spec: TabularSpec, explanation: Explanation | None
) -> onnx.ModelProto:
    if explanation is None:
        wrapper: torch.nn.Module = _ProbabilityModule(model).eval()
        outputs = [OUTPUT_NAME]
    else:
        wrapper = _ExplainedModule(model, explanation.term_means).eval()
        outputs = [OUTPUT_NAME, CONTRIBUTIONS]
    batch = torch.export.Dim("batch", min=1)
    example = (
        torch.zeros(4, len(spec.numeric), dtype=torch.float32),
        torch.zeros(4, len(spec.categorical), dtype=torch.int64),
    )
    program = torch.onnx.export(
        wrapper,
        example,
        input_names=["numeric", "category_index"],
        output_names=outputs,
        dynamic_shapes=({0: batch}, {0: batch}),
        external_data=False,
        dynamo=True,
        verbose=False,
    )
    return program.model_proto


def _no_columns(output: str, like: str, dtype: int) -> list[onnx.NodeProto]:
    """An [N, 0] tensor for a task without numeric (or categorical) inputs: N from ``like``."""
    zero = helper.make_tensor(f"{output}__zero", dtype, [1], [0])
    return [
        helper.make_node("Shape", [like], [f"{output}__rows"], end=1, name=f"{output}_rows"),
        helper.make_node(
            "Constant",
            [],
            [f"{output}__width"],
            value=helper.make_tensor(f"{output}__w", TensorProto.INT64, [1], [0]),
            name=f"{output}_width",
        ),
        helper.make_node(
            "Concat",
            [f"{output}__rows", f"{output}__width"],
            [f"{output}__shape"],
            axis=0,
            name=f"{output}_shape",
        ),
        helper.make_node(
            "ConstantOfShape", [f"{output}__shape"], [output], value=zero, name=f"{output}_empty"
        ),
    ]


def _lookup_prefix(spec: TabularSpec, task: Task, opset: int, ir_version: int) -> onnx.ModelProto:
    """Per-feature raw inputs → ``numeric`` and ``category_index`` tensors."""
    # Graph inputs in the task's order, whatever order the spec's tensors use.
    inputs = [
        helper.make_tensor_value_info(
            name, TensorProto.FLOAT if dtype == "float32" else TensorProto.STRING, ["batch", 1]
        )
        for name, dtype in input_signature(task)
    ]
    nodes = []
    if spec.numeric:
        nodes.append(
            helper.make_node("Concat", spec.numeric, ["numeric"], axis=1, name="concat_numeric")
        )
    else:
        nodes += _no_columns("numeric", inputs[0].name, TensorProto.FLOAT)
    index_names = []
    for name in spec.categorical:
        vocab = spec.vocab[name]
        index_names.append(f"{name}__index")
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [name],
                [f"{name}__index"],
                domain=_ML_DOMAIN,
                name=f"lookup_{name}",
                keys_strings=vocab or [""],  # an empty vocabulary still needs one key
                values_int64s=list(range(1, len(vocab) + 1)) or [0],
                default_int64=0,
            )
        )
    if index_names:
        nodes.append(
            helper.make_node(
                "Concat", index_names, ["category_index"], axis=1, name="concat_categories"
            )
        )
    else:
        nodes += _no_columns("category_index", inputs[0].name, TensorProto.INT64)
    graph = helper.make_graph(
        nodes,
        "category_lookup",
        inputs,
        [
            helper.make_tensor_value_info(
                "numeric", TensorProto.FLOAT, ["batch", len(spec.numeric)]
            ),
            helper.make_tensor_value_info(
                "category_index", TensorProto.INT64, ["batch", len(spec.categorical)]
            ),
        ],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(_ML_DOMAIN, _ML_OPSET)],
        ir_version=ir_version,
    )


def torch_to_onnx(
    model: TabularMLP,
    spec: TabularSpec,
    out_path: Path,
    task: Task,
    graph_name: str,
    reference: pd.DataFrame | None = None,
) -> Path:
    """Export a trained TabularMLP to one self-contained ONNX file under the task's contract.

    The spec's inputs must be the task's features (``model_export.check_inputs``). With
    ``reference`` rows, a wide model's graph also outputs its centred ``contributions``.
    """
    explanation = None
    if reference is not None and len(reference) and model.wide:
        explanation = explanation_of(model, spec, reference)
    core = _export_core(model, spec, explanation)
    opset = next(o.version for o in core.opset_import if o.domain in ("", "ai.onnx"))
    prefix = _lookup_prefix(spec, task, opset, core.ir_version)
    merged = onnx.compose.merge_models(
        prefix,
        core,
        io_map=[("numeric", "numeric"), ("category_index", "category_index")],
        prefix1="",
        prefix2="",
    )
    merged.graph.name = graph_name
    # merge_models lists each model's opset imports; tools (the quantiser) want one per domain.
    unique = {o.domain or "": o.version for o in merged.opset_import}
    del merged.opset_import[:]
    merged.opset_import.extend(helper.make_opsetid(d, v) for d, v in unique.items())
    if explanation is not None:
        write_explanation(merged, explanation)
    onnx.checker.check_model(merged, full_check=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(merged, out_path)
    return out_path
