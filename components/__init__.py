"""KFP components of e2eai: one thin ``@dsl.component`` per pipeline step.

Each component body is a single call into ``e2eai.pipeline.steps``; the logic lives in the
library. Every component runs in the project image (``e2eai.pipeline.images``), which has kfp
installed, so components do not pip-install it at run time.
"""

from components.configure import configure_run
from components.deploy import deploy_canary
from components.evaluate import evaluate_model
from components.export_onnx import export_onnx
from components.features import build_features
from components.gate_failure import report_gate_failure
from components.hpo import tune_hyperparameters
from components.prepare import prepare_data
from components.register import register_model
from components.train import train_model
from components.training_set import retrieve_training_set

__all__ = [
    "build_features",
    "configure_run",
    "deploy_canary",
    "evaluate_model",
    "export_onnx",
    "prepare_data",
    "register_model",
    "report_gate_failure",
    "retrieve_training_set",
    "train_model",
    "tune_hyperparameters",
]
