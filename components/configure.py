"""Resolve and validate the run's settings once; every later step receives the result."""

from kfp import dsl

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def configure_run(
    settings_json: str,
    data_start: str,
    data_end: str,
    train_start: str,
    train_end: str,
    family: str,
    hpo_trials: int,
    task: str = "",
) -> str:
    """In: settings overrides (JSON) and the run's parameters ("" / -1 keep the setting).
    Out: the complete settings of the run as JSON (fails early on a bad parameter)."""
    from e2eai.pipeline.steps import configure_step

    return configure_step(
        settings_json, data_start, data_end, train_start, train_end, family, hpo_trials, task
    )
