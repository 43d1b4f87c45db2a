"""Model registry: versions with metrics, params, lineage and stage; verified artifacts.

Metadata lives in a SQL database through SQLAlchemy (SQLite by default, any SQLAlchemy URL,
e.g. PostgreSQL, on a cluster); artifact files live in the artifact store (local directory or
S3) under ``models/<name>/v<version>/<file>``, each with the sha256 recorded at registration
and checked whenever it is fetched.

    registry = ModelRegistry.from_settings(get_settings())
    mv = registry.register(name="flight-delay", family="hist_gb",
                           artifacts={"model.joblib": path}, metrics={...}, params={...},
                           lineage={"raw_snapshot": sha, "parent_version": None})
    registry.add_artifacts(mv.version, {"model.onnx": onnx_path})
    registry.transition(mv.version, "canary", reason="passed gates")
    registry.fetch_artifact(mv.version, "model.onnx", Path("/tmp/serve"))
"""

from e2eai.registry.lineage import Lineage, TrainingWindow, code_version
from e2eai.registry.model_version import (
    ArtifactCheck,
    ArtifactRecord,
    ModelVersion,
    StageTransition,
    VersionVerification,
)
from e2eai.registry.registry import ModelRegistry, artifact_key
from e2eai.registry.stages import ALLOWED_TRANSITIONS, Stage

__all__ = [
    "ALLOWED_TRANSITIONS",
    "ArtifactCheck",
    "ArtifactRecord",
    "Lineage",
    "ModelRegistry",
    "ModelVersion",
    "Stage",
    "StageTransition",
    "TrainingWindow",
    "VersionVerification",
    "artifact_key",
    "code_version",
]
