"""Publish the holdout evaluation and decide the gates."""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Input, Markdown, Metrics, Model, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_model(
    settings_json: str,
    model: Input[Model],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    report: Output[HTML],
    gates: Output[Markdown],
) -> bool:
    """In: run settings, trained model. Out: holdout metrics per model and per gate, the ROC
    curve and confusion matrix, the HTML training report, the gate verdict with reasons
    (Markdown); returns True when every gate passed."""
    from e2eai.pipeline.steps import evaluate_step

    return evaluate_step(settings_json, model, metrics, roc, report, gates)
