"""scikit-learn Pipeline → ONNX with skl2onnx: string inputs, one ``probability`` output.

skl2onnx maps ColumnTransformer column names to graph inputs of the same name, so one input
per task feature falls out naturally. ZipMap is disabled and the [N, 2] probabilities are
cut to P(class 1) by a Gather node named ``probability``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
from onnx import TensorProto, helper

from e2eai.export.signature import OUTPUT_NAME, input_signature

if TYPE_CHECKING:
    from e2eai.tasks import Task

_TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}


def sklearn_to_onnx(pipeline: Any, out_path: Path, task: Task, graph_name: str) -> Path:
    """Export a fitted sklearn Pipeline to one ONNX file under the task's contract."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial_types = [
        (name, FloatTensorType([None, 1]) if dtype == "float32" else StringTensorType([None, 1]))
        for name, dtype in input_signature(task)
    ]
    model = convert_sklearn(
        pipeline,
        initial_types=initial_types,
        options={id(pipeline): {"zipmap": False}},
        target_opset=_TARGET_OPSET,
        name=graph_name,
    )
    graph = model.graph
    probabilities = next(o.name for o in graph.output if o.name != "label")
    graph.initializer.append(helper.make_tensor("positive_class", TensorProto.INT64, [], [1]))
    graph.node.append(
        helper.make_node(
            "Gather",
            [probabilities, "positive_class"],
            [OUTPUT_NAME],
            axis=1,
            name="select_positive_class",
        )
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None]))
    onnx.checker.check_model(model, full_check=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, out_path)
    return out_path
