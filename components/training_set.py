"""Retrieve the point-in-time correct training set from Feast."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def retrieve_training_set(
    settings_json: str, features_key: str, snapshot: str, training_frame: Output[Dataset]
) -> NamedTuple("TrainingSetOutputs", [("rows", int), ("cache_hit", bool)]):
    """In: run settings, the features' content key, the raw snapshot id. Out: the training
    window plus holdout days as Parquet (Dataset), its row count and the cache verdict."""
    from e2eai.pipeline.steps import training_set_step

    return training_set_step(settings_json, features_key, snapshot, training_frame)
