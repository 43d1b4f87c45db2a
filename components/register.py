"""Register the candidate version (model, ONNX, metrics, lineage) in the model registry."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_model(
    settings_json: str,
    model: Input[Model],
    onnx_model: Input[Model],
    registration: Output[Artifact],
) -> int:
    """In: run settings, trained model, its ONNX export. Out: the registry record (JSON);
    returns the new version number."""
    from e2eai.pipeline.steps import register_step

    return register_step(settings_json, model, onnx_model, registration)
