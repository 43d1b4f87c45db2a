"""Ingest, snapshot, validate and clean the raw flights of the data window."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def prepare_data(
    settings_json: str, prepared: Output[Dataset], quality_report: Output[HTML]
) -> NamedTuple("PrepareOutputs", [("snapshot", str), ("cache_hit", bool)]):
    """In: run settings. Out: prepared tables (Dataset directory), the data-quality report
    (HTML), the raw snapshot id and whether the step cache was hit."""
    from e2eai.pipeline.steps import prepare_step

    return prepare_step(settings_json, prepared, quality_report)
