"""Deploy a registered version as a canary with a share of the traffic."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_canary(
    settings_json: str, model_version: int, canary_percent: int, deployment: Output[Markdown]
) -> str:
    """In: run settings, registry version, canary traffic percent. Out: the deployment record
    (Markdown); returns how it was deployed ("local-serving" or "registry")."""
    from e2eai.pipeline.steps import deploy_step

    return deploy_step(settings_json, model_version, canary_percent, deployment)
