"""Say why a candidate was not registered (the branch taken when the gates fail)."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Output

from e2eai.pipeline.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def report_gate_failure(gates: Input[Markdown], decision: Output[Markdown]) -> str:
    """In: the evaluation's gate verdict. Out: "not registered, not deployed" with the failed
    gates' reasons (Markdown); returns the reasons as one string."""
    from e2eai.pipeline.steps import gate_failure_step

    return gate_failure_step(gates, decision)
