"""Search the MLP's hyper-parameters with Optuna (skipped when the budget is 0)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def tune_hyperparameters(
    settings_json: str,
    training_frame: Input[Dataset],
    best_params: Output[Artifact],
    metrics: Output[Metrics],
) -> str:
    """In: run settings (training.hpo_trials), training set. Out: the best point as JSON
    (Artifact and return value, "{}" when skipped) and search metrics."""
    from e2eai.pipeline.steps import hpo_step

    return hpo_step(settings_json, training_frame, best_params, metrics)
