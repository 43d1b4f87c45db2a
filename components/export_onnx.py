"""Export the candidate to ONNX with a parity check and optional int8 quantisation."""

from kfp import dsl
from kfp.dsl import Input, Metrics, Model, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def export_onnx(
    settings_json: str, model: Input[Model], onnx_model: Output[Model], metrics: Output[Metrics]
):
    """In: run settings, trained model. Out: the ONNX directory (model.onnx served, fp32/int8
    variants) and parity/quantisation metrics."""
    from e2eai.pipeline.steps import export_step

    export_step(settings_json, model, onnx_model, metrics)
