"""Find and import the training pipeline definition (``pipelines/training_pipeline.py``).

The library never imports ``pipelines/`` or ``components/`` statically; the CLI and benches
load the pipeline through here, from the project directory (a checkout, or ``/app`` in the
component image), with that directory put on ``sys.path`` so ``components`` resolves too.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from e2eai.errors import PipelineError

PIPELINE_FILE = Path("pipelines") / "training_pipeline.py"
PROJECT_DIR_ENV = "E2EAI_PROJECT_DIR"


def project_dir() -> Path:
    """The directory holding ``pipelines/`` and ``components/``.

    ``$E2EAI_PROJECT_DIR`` if set, else the current directory if it has them, else the
    checkout this package was installed from (editable installs).
    """
    candidates = []
    if os.environ.get(PROJECT_DIR_ENV):
        candidates.append(Path(os.environ[PROJECT_DIR_ENV]))
    candidates += [Path.cwd(), Path(__file__).resolve().parents[3]]
    for candidate in candidates:
        if (candidate / PIPELINE_FILE).is_file() and (candidate / "components").is_dir():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise PipelineError(
        f"no {PIPELINE_FILE} with components/ beside it in {tried}; set {PROJECT_DIR_ENV}"
    )


def load_training_pipeline(directory: Path | None = None) -> Any:
    """The ``training_pipeline`` KFP pipeline object (a ``GraphComponent``)."""
    root = (directory or project_dir()).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module("pipelines.training_pipeline")
    loaded_from = Path(module.__file__ or "").resolve()
    if loaded_from != root / PIPELINE_FILE:
        raise PipelineError(
            f"imported pipelines.training_pipeline from {loaded_from}, not from {root}: another "
            "'pipelines' package shadows the project's"
        )
    return module.training_pipeline
