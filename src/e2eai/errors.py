"""Errors users see: each names the thing at fault and what is wrong with it."""


class E2eaiError(Exception):
    """Base of every error e2eai raises on purpose (the CLI prints these without a traceback)."""


class DataSourceError(E2eaiError):
    """An input file or URI cannot be read as the expected table."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class ArtifactIntegrityError(E2eaiError):
    """An artifact's bytes do not match the sha256 recorded for it."""


class ArtifactNotFoundError(E2eaiError):
    """No artifact is stored under the requested key."""


class InvalidInferenceRequest(E2eaiError):
    """A request that breaks the schema: HTTP 400 (413 if too big), gRPC INVALID_ARGUMENT."""

    def __init__(self, field: str | None, problem: str, status: int = 400) -> None:
        self.field = field
        self.problem = problem
        self.status = status
        super().__init__(f"{field}: {problem}" if field else problem)


class ServingError(E2eaiError):
    """Local serving or a rollout cannot do what was asked (no deployment, no canary, …)."""


class TrainingDataError(E2eaiError):
    """A training frame lacks required columns, or a time split leaves a part empty."""


class TrainingConfigError(E2eaiError):
    """Training settings that cannot work together (e.g. HPO for a family without a space)."""


class TrainingLaunchError(E2eaiError):
    """A distributed training run (torchrun) failed; the message carries its log tail."""


class ModelArtifactError(E2eaiError):
    """A model directory is missing a file or holds a model of an unknown family."""


class ExportParityError(E2eaiError):
    """The exported ONNX model's probabilities differ from the framework model's."""

    def __init__(self, family: str, max_abs_diff: float, atol: float, rows: int) -> None:
        self.family = family
        self.max_abs_diff = max_abs_diff
        self.atol = atol
        self.rows = rows
        super().__init__(
            f"ONNX parity failed for {family}: max |p_onnx - p_framework| = {max_abs_diff:.3g} "
            f"over {rows} holdout rows exceeds export.parity_atol = {atol:g}"
        )


class ArtifactStoreError(E2eaiError):
    """The artifact store refused or failed an operation (bad key, backend error)."""


class InvalidArtifactKeyError(ArtifactStoreError, ValueError):
    """An artifact key is not a safe relative POSIX path inside the store."""


class RegistryError(E2eaiError):
    """Base of the model registry's errors."""


class ModelVersionNotFoundError(RegistryError, LookupError):
    """No model version with the requested number exists in the registry."""


class UnknownStageError(RegistryError, ValueError):
    """A stage name is not one of the registry's stages."""


class InvalidStageTransitionError(RegistryError):
    """A model version cannot move from its current stage to the requested one."""


class InvalidRegistrationError(RegistryError, ValueError):
    """A registration (name, artifacts, metrics, params or lineage) is malformed."""


class PipelineError(E2eaiError):
    """A pipeline cannot be built, compiled, run or submitted as asked (bad parameter, …)."""


class TrainingJobError(E2eaiError):
    """A cluster training job (TrainJob / PyTorchJob) failed, or did not finish in time."""


class ManifestError(E2eaiError):
    """Cluster manifests cannot be rendered or checked: a missing overlay, tool or CRD folder."""
