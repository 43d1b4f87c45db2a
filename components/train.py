"""Train the model family and the baselines (torchrun locally, TrainJob/PyTorchJob on a cluster)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_model(
    settings_json: str,
    training_frame: Input[Dataset],
    best_params_json: str,
    warm_start_version: int,
    model: Output[Model],
):
    """In: run settings, training set, HPO's best point, registry version to fine-tune (0 =
    train from scratch). Out: the training run directory (model, baselines, holdout, metrics,
    gates, plots) as a Model artifact."""
    from e2eai.pipeline.steps import train_step

    train_step(settings_json, training_frame, best_params_json, warm_start_version, model)
