"""Training: models, distributed runs, HPO, fine-tuning, evaluation and gates.

``run_training`` is the entry point for the CLI and the KFP components. torch is imported
only by the modules that train or load torch models, never by this package's import.
"""

from e2eai.training.run import TrainingResult, run_training

__all__ = ["TrainingResult", "run_training"]
