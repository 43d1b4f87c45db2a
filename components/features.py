"""Build the Feast feature views' sources, apply the repo and materialize the online store."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def build_features(
    settings_json: str, prepared: Input[Dataset], feature_sources: Output[Dataset]
) -> NamedTuple("FeatureOutputs", [("features_key", str), ("cache_hit", bool)]):
    """In: run settings, prepared tables. Out: the feature views' Parquet sources (Dataset),
    the content key of the features and whether the step cache was hit."""
    from e2eai.pipeline.steps import features_step

    return features_step(settings_json, prepared, feature_sources)
