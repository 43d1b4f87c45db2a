"""The step functions KFP components call: one function per pipeline step.

Each takes the run's settings as JSON (see ``run_settings``) and KFP artifact objects (anything
with ``.path`` and ``.metadata``; Metrics also ``log_metric``), calls the stage's library
function and writes the step's outputs where KFP expects them. Data and feature steps reuse
outputs from the content-hash step cache when their inputs are unchanged.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from e2eai import jsonable
from e2eai.config import Settings
from e2eai.errors import PipelineError
from e2eai.pipeline.fingerprints import code_fingerprint, source_fingerprint
from e2eai.pipeline.run_settings import resolve_run_settings, settings_from_json, settings_to_json
from e2eai.pipeline.step_cache import StepCache, cache_key, copy_into


class ArtifactLike(Protocol):
    """What steps need of a KFP artifact (``kfp.dsl.Artifact`` and its subclasses)."""

    @property
    def path(self) -> str: ...

    metadata: dict[str, Any]


class MetricsLike(ArtifactLike, Protocol):
    def log_metric(self, metric: str, value: float) -> None: ...


class ClassificationMetricsLike(ArtifactLike, Protocol):
    def log_roc_curve(self, fpr: list[float], tpr: list[float], threshold: list[float]) -> None: ...

    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None: ...


class PrepareOutputs(NamedTuple):
    snapshot: str
    cache_hit: bool


class FeatureOutputs(NamedTuple):
    features_key: str
    cache_hit: bool


class TrainingSetOutputs(NamedTuple):
    rows: int
    cache_hit: bool


def step_cache(settings: Settings) -> StepCache:
    """The run's step cache: ``settings.home/cache`` (off when pipeline.step_cache is false)."""
    return StepCache(settings.home / "cache", enabled=settings.pipeline.step_cache)


def _timed(metadata: dict[str, Any], started: float, cache_hit: bool) -> None:
    metadata["cache_hit"] = cache_hit
    metadata["step_seconds"] = round(time.perf_counter() - started, 3)


# -- configure ----------------------------------------------------------------------------------


def configure_step(
    settings_json: str,
    data_start: str,
    data_end: str,
    train_start: str,
    train_end: str,
    family: str,
    hpo_trials: int,
    task: str = "",
) -> str:
    """Validate the run's parameters and return the complete settings every step receives."""
    settings = resolve_run_settings(
        settings_json,
        data_start=data_start,
        data_end=data_end,
        train_start=train_start,
        train_end=train_end,
        family=family,
        hpo_trials=hpo_trials,
        task=task,
    )
    from e2eai.errors import TrainingConfigError
    from e2eai.tasks import load_task
    from e2eai.training.families import family as registered_family

    t = settings.training
    try:
        registered_family(t.family)
    except TrainingConfigError as exc:
        raise PipelineError(f"training.family: {exc}") from exc
    holdout_end = t.train_end + timedelta(days=t.holdout_days)
    from e2eai.tasks import TaskError

    try:
        timed = load_task(settings).time_based  # also: the task exists and its file is valid
    except TaskError as exc:
        raise PipelineError(f"task: {exc}") from exc
    if timed and (t.train_start < settings.data.start or holdout_end > settings.data.end):
        raise PipelineError(
            f"training window {t.train_start}..{t.train_end} plus {t.holdout_days} holdout days "
            f"(to {holdout_end}) must lie inside the data window "
            f"{settings.data.start}..{settings.data.end}"
        )
    return settings_to_json(settings)


# -- data ---------------------------------------------------------------------------------------


def prepare_step(
    settings_json: str, prepared: ArtifactLike, quality_report: ArtifactLike
) -> PrepareOutputs:
    """Ingest, snapshot, validate and clean the data window (or reuse the cached result).

    ``prepared`` receives the prepared tables (a directory), ``quality_report`` the HTML
    data-quality report.
    """
    from e2eai.data.prepare import PREPARED
    from e2eai.tasks import load_task

    started = time.perf_counter()
    settings = settings_from_json(settings_json)
    cache = step_cache(settings)
    key = cache_key(
        "prepare",
        {
            "source": source_fingerprint(settings),
            "data": settings.data.model_dump(mode="json"),
            "artifacts": settings.artifacts.model_dump(mode="json"),
            "code": code_fingerprint("e2eai.data", "e2eai.tasks", "e2eai.storage"),
        },
    )
    entry = cache.lookup("prepare", key)
    target = settings.data_dir / PREPARED
    if entry is None:
        result = load_task(settings).prepare_data(settings)
        entry = cache.store("prepare", key, {PREPARED: result.directory}, result.summary())
        hit = False
    else:  # the library's own location is refreshed too: `e2eai features build` reads it
        copy_into(entry.file(PREPARED), target)
        hit = True
    summary = entry.summary
    copy_into(target, Path(prepared.path))
    shutil.copyfile(target / "quality.html", quality_report.path)
    prepared.metadata.update(
        {k: summary[k] for k in ("rows_in", "rows_accepted", "rows_quarantined", "rows_excluded")}
    )
    prepared.metadata.update(snapshot=summary["snapshot"], cache_key=key)
    _timed(prepared.metadata, started, hit)
    return PrepareOutputs(snapshot=str(summary["snapshot"]), cache_hit=hit)


# -- features -----------------------------------------------------------------------------------


def _feature_repo_files(repo: Path) -> list[Path]:
    names = ("feature_store.yaml", ".feastignore")
    return [p for p in repo.iterdir() if p.is_file() and (p.suffix == ".py" or p.name in names)]


def features_step(
    settings_json: str, prepared: ArtifactLike, feature_sources: ArtifactLike
) -> FeatureOutputs:
    """Build the feature views' sources, ``feast apply`` and materialize (or reuse the cache).

    ``prepared`` is the data step's output; ``feature_sources`` receives the Parquet sources
    the feature views read.
    """
    from e2eai.data.prepare import PREPARED
    from e2eai.pipeline.fingerprints import files_fingerprint
    from e2eai.tasks import load_task

    started = time.perf_counter()
    settings = settings_from_json(settings_json)
    task = load_task(settings)
    prepared_dir = Path(prepared.path)
    prepared_tables = sorted(p.name for p in prepared_dir.glob("*.parquet"))
    if not (prepared_dir / "manifest.json").is_file() or not prepared_tables:
        raise PipelineError(f"prepared data {prepared_dir} has no manifest.json or tables")
    first, last = task.materialize_window(settings)
    cache = step_cache(settings)
    # The repo's definitions are fingerprinted where it has files (flights); generated
    # definitions are covered by the task's code and settings.
    repo = task.feature_repo(settings).resolve()
    key = cache_key(
        "features",
        {
            "task": task.name,
            "prepared": files_fingerprint([prepared_dir / n for n in prepared_tables]),
            "features": settings.features.model_dump(mode="json"),
            "repo": str(repo),
            "repo_definitions": files_fingerprint(_feature_repo_files(repo), repo)
            if repo.is_dir()
            else "",
            "materialize": [str(first), str(last)],
            "code": code_fingerprint("e2eai.features", "e2eai.tasks"),
        },
    )
    entry = cache.lookup("features", key)
    sources = repo / "data"
    if entry is None:
        # The library reads prepared tables from its own location: put this run's there.
        if prepared_dir.resolve() != (settings.data_dir / PREPARED).resolve():
            copy_into(prepared_dir, settings.data_dir / PREPARED)
        tables = task.build_feature_tables(settings)
        applied = task.apply_features(settings)
        online = task.materialize(settings, first, last)
        summary = {
            "rows": tables.rows,
            "feature_views": applied.feature_views,
            "feature_services": applied.feature_services,
            "materialized": [online.start, online.end],
            "online_entities": online.online_entities,
        }
        entry = cache.store("features", key, {"data": sources}, summary)
        hit = False
    else:
        # Sources, the file registry and the SQLite online store all live in the repo's data/.
        copy_into(entry.file("data"), sources)
        hit = True
    out = Path(feature_sources.path)
    out.mkdir(parents=True, exist_ok=True)
    for parquet in sources.glob("*.parquet"):
        shutil.copy2(parquet, out / parquet.name)
    feature_sources.metadata.update(entry.summary, cache_key=key)
    _timed(feature_sources.metadata, started, hit)
    return FeatureOutputs(features_key=key, cache_hit=hit)


def training_set_step(
    settings_json: str, features_key: str, snapshot: str, training_frame: ArtifactLike
) -> TrainingSetOutputs:
    """Point-in-time training rows (Feast) for the training window plus its holdout days.

    ``features_key`` identifies the feature step's output, so the cached frame is reused only
    for the same features; ``snapshot`` (the raw data snapshot id) is stamped on the frame for
    the model's lineage.
    """
    from e2eai.tasks import load_task

    started = time.perf_counter()
    settings = settings_from_json(settings_json)
    task = load_task(settings)
    t = settings.training
    start, end = t.train_start, t.train_end + timedelta(days=t.holdout_days)
    cache = step_cache(settings)
    key = cache_key(
        "training_set",
        {
            "features": features_key,
            "window": [str(start), str(end)] if task.time_based else "all rows",
            "code": code_fingerprint("e2eai.features", "e2eai.tasks"),
        },
    )
    entry = cache.lookup("training_set", key)
    out = Path(training_frame.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if entry is None:
        frame = task.training_set(settings, start, end)
        frame.attrs["raw_snapshot"] = snapshot
        frame.to_parquet(out, index=False)
        summary: dict[str, Any] = {"rows": len(frame), "window": [str(start), str(end)]}
        cache.store("training_set", key, {"frame.parquet": out}, summary)
        hit = False
    else:
        shutil.copyfile(entry.file("frame.parquet"), out)
        summary = entry.summary
        hit = True
    training_frame.metadata.update(summary, raw_snapshot=snapshot, cache_key=key)
    _timed(training_frame.metadata, started, hit)
    return TrainingSetOutputs(rows=int(summary["rows"]), cache_hit=hit)


# -- training -----------------------------------------------------------------------------------


def hpo_step(
    settings_json: str, training_frame: ArtifactLike, best_params: ArtifactLike, metrics: Any
) -> str:
    """Optuna search of the family's hyper-parameters (``training.hpo_trials``; 0 = skipped).

    Writes the best point as JSON to ``best_params`` and returns it ("{}" when skipped).
    """
    import pandas as pd

    settings = settings_from_json(settings_json)
    t = settings.training
    if t.hpo_trials <= 0:
        Path(best_params.path).write_text("{}")
        best_params.metadata["skipped"] = True
        metrics.log_metric("hpo_trials", 0)
        return "{}"
    from e2eai.tasks import load_task
    from e2eai.training.run import run_search, search_family

    task = load_task(settings)
    search_family(task, t.family)  # before reading the frame: a family without a space fails
    result = run_search(settings, pd.read_parquet(training_frame.path), task)
    chosen = json.dumps(result.best_params, sort_keys=True)
    Path(best_params.path).write_text(chosen)
    best_params.metadata.update(skipped=False, trials_csv=str(result.trials_csv))
    metrics.log_metric("hpo_trials", result.trials)
    metrics.log_metric("hpo_pruned", result.pruned)
    metrics.log_metric("best_validation_auc", result.best_validation_auc)
    return chosen


def settings_with_best_params(settings: Settings, best_params_json: str) -> Settings:
    """``settings`` with the HPO step's best point applied and no further search."""
    from e2eai.config import TrainingSettings

    best = json.loads(best_params_json or "{}")
    unknown = sorted(set(best) - set(TrainingSettings.model_fields))
    if unknown:
        raise PipelineError(f"best_params_json names unknown training settings {unknown}")
    merged = {**settings.training.model_dump(), **best, "hpo_trials": 0}
    return settings.model_copy(update={"training": TrainingSettings.model_validate(merged)})


def train_step(
    settings_json: str,
    training_frame: ArtifactLike,
    best_params_json: str,
    warm_start_version: int,
    model: ArtifactLike,
) -> None:
    """Train the family and both baselines, evaluate on the holdout and gate.

    Locally torch runs under torchrun in this step; with ``pipeline.training_backend``
    ``trainjob``/``pytorchjob`` the training runs as a Kubeflow job the step creates and waits
    for. ``model`` receives the run directory (model, baselines, holdout, metrics, plots).
    """
    import pandas as pd

    from e2eai.pipeline.trained_model import save_training_result

    started = time.perf_counter()
    settings = settings_with_best_params(settings_from_json(settings_json), best_params_json)
    frame = pd.read_parquet(training_frame.path)
    warm = warm_start_version if warm_start_version > 0 else None
    run_dir = Path(model.path)
    run_dir.mkdir(parents=True, exist_ok=True)
    if settings.pipeline.training_backend == "local":
        from e2eai.training.run import run_training

        result = run_training(settings, frame=frame, warm_start_from=warm, run_dir=run_dir)
    else:
        from e2eai.pipeline.cluster_training import train_on_cluster

        result = train_on_cluster(settings, frame, warm, run_dir)
    save_training_result(result, run_dir)
    model.metadata.update(
        family=result.family,
        roc_auc=result.metrics["model"]["roc_auc"],
        gates_passed=result.passed,
        backend=settings.pipeline.training_backend,
        parent_version=warm,
    )
    _timed(model.metadata, started, False)


def evaluate_step(
    settings_json: str,
    model: ArtifactLike,
    metrics: MetricsLike,
    roc: ClassificationMetricsLike,
    report: ArtifactLike,
    gates: ArtifactLike,
) -> bool:
    """Publish the holdout evaluation and the gate verdict; return whether every gate passed.

    ``metrics``: ROC-AUC/PR-AUC/log-loss/Brier per model and 1/0 per gate; ``roc``: the
    candidate's ROC curve and confusion matrix; ``report``: HTML training report; ``gates``:
    Markdown with each gate's verdict and reason.
    """
    import numpy as np
    import pandas as pd
    from sklearn.metrics import confusion_matrix, roc_curve

    from e2eai.pipeline.trained_model import load_training_result
    from e2eai.tasks import load_task
    from e2eai.training.columns import labels
    from e2eai.training.families import load_model

    settings = settings_from_json(settings_json)
    task = load_task(settings)
    result = load_training_result(Path(model.path))
    for name, values in result.metrics.items():
        for key in ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "accuracy", "macro_f1"):
            if values.get(key) is not None:
                metrics.log_metric(f"{name}_{key}", float(values[key]))
    for gate in result.gates:
        metrics.log_metric(f"gate_{gate.name}", 1.0 if gate.passed else 0.0)
    metrics.log_metric("gates_passed", 1.0 if result.passed else 0.0)

    if task.modality != "tabular":  # multi-class: the confusion matrix the run computed
        matrix = result.metrics["model"]["confusion_matrix"]
        names = list(getattr(task, "classes", ())) or [str(k) for k in range(len(matrix))]
        roc.log_confusion_matrix(names, matrix)
        return _publish_gates(result, report, gates)
    holdout = pd.read_parquet(result.holdout_path)
    y = labels(holdout, task.label, "holdout")
    p = load_model(result.model_dir).predict_proba(holdout)
    fpr, tpr, thresholds = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, num=min(len(fpr), 200)).round().astype(int))
    # roc_curve's first threshold is +inf, which JSON (and the KFP UI) cannot hold.
    finite = np.minimum(thresholds[keep], 1.0)
    roc.log_roc_curve(fpr[keep].tolist(), tpr[keep].tolist(), finite.tolist())
    predicted = (p >= settings.gates.decision_threshold).astype(int)
    matrix = confusion_matrix(y, predicted, labels=[0, 1]).tolist()
    roc.log_confusion_matrix([f"not_{task.positive_name}", task.positive_name], matrix)
    return _publish_gates(result, report, gates)


def _publish_gates(result: Any, report: ArtifactLike, gates: ArtifactLike) -> bool:
    """The evaluate step's HTML report and gate verdicts; whether every gate passed."""
    from e2eai.pipeline.reports import failed_gate_reasons, gates_markdown, training_report_html

    Path(report.path).write_text(training_report_html(result))
    Path(gates.path).write_text(gates_markdown(result))
    gates.metadata.update(
        passed=result.passed,
        gates=[{"name": g.name, "passed": g.passed, "message": g.message} for g in result.gates],
        failed=failed_gate_reasons(result),
    )
    return result.passed


# -- after the gates ----------------------------------------------------------------------------


def export_step(
    settings_json: str, model: ArtifactLike, onnx_model: ArtifactLike, metrics: MetricsLike
) -> None:
    """Export the candidate to ONNX, check parity on the holdout, quantise when it pays."""
    import pandas as pd

    from e2eai.export.model_export import export_model
    from e2eai.pipeline.trained_model import load_training_result
    from e2eai.tasks import load_task

    settings = settings_from_json(settings_json)
    task = load_task(settings)
    result = load_training_result(Path(model.path))
    holdout = pd.read_parquet(result.holdout_path)
    reference = result.extra_artifacts.get("reference.parquet")  # calibrates image int8
    calibration = (
        pd.read_parquet(reference) if task.modality == "image" and reference is not None else None
    )
    exported = export_model(
        result.model_dir,
        holdout,
        Path(onnx_model.path),
        settings.export,
        task,
        calibration,
        settings.training,
    )
    summary = exported.summary()
    metrics.log_metric("parity_max_abs_diff", float(summary["parity_max_abs_diff"]))
    metrics.log_metric("parity_rows", int(summary["parity_rows"]))
    metrics.log_metric("quantized", 1.0 if summary["quantized"] else 0.0)
    onnx_model.metadata.update(
        family=exported.family,
        sha256=exported.sha256,
        served_file=exported.onnx_path.name,
        quantized=summary["quantized"],
        quantization_reason=(summary["quantization"] or {}).get("reason"),
    )
    if "pruning" in summary:  # export.prune (image tasks): what was compared and served
        pruning = summary["pruning"]
        onnx_model.metadata.update(
            served_variant=pruning["served"],
            pruning_reason=pruning["reason"],
            compression=pruning["compression"],
        )


def register_step(
    settings_json: str, model: ArtifactLike, onnx_model: ArtifactLike, registration: ArtifactLike
) -> int:
    """Register the candidate (model files, holdout, metrics, plots + model.onnx); its version."""
    from e2eai.export.model_export import SERVED_FILE
    from e2eai.pipeline.trained_model import load_training_result
    from e2eai.registry import ModelRegistry
    from e2eai.training.registration import register_candidate

    settings = settings_from_json(settings_json)
    result = load_training_result(Path(model.path))
    onnx_file = Path(onnx_model.path) / SERVED_FILE
    if not onnx_file.is_file():
        raise PipelineError(f"{onnx_file}: the export step wrote no {SERVED_FILE}")
    with ModelRegistry.from_settings(settings) as registry:
        version = register_candidate(settings, result, registry=registry)
        version = registry.add_artifacts(version.version, {SERVED_FILE: onnx_file})
    record = version.model_dump(mode="json")
    Path(registration.path).write_text(jsonable.dumps(record, indent=1))
    registration.metadata.update(
        version=version.version, name=version.name, stage=str(version.stage)
    )
    return int(version.version)


def deploy_step(
    settings_json: str, model_version: int, canary_percent: int, deployment: ArtifactLike
) -> str:
    """Deploy ``model_version`` as a canary taking ``canary_percent`` % of the traffic.

    When local serving runs (``e2eai serve``), the canary is started behind its router;
    otherwise the registry records the version as ``canary`` with the requested percent, for
    the serving layer (local manager or KServe) to pick up. Returns how it was deployed.
    """
    from e2eai.registry import ModelRegistry

    if not 0 < canary_percent <= 100:
        raise PipelineError(f"canary_percent must be in 1..100, got {canary_percent}")
    settings = settings_from_json(settings_json)
    mode, detail = _deploy_local_serving(settings, model_version, canary_percent)
    if mode is None:
        reason = (
            f"pipeline requested a {canary_percent}% canary; {detail}: start it with "
            f"`e2eai rollout deploy --version {model_version} --canary {canary_percent}`"
        )
        with ModelRegistry.from_settings(settings) as registry:
            registry.transition(model_version, "canary", reason)
        mode, detail = "registry", reason
    with ModelRegistry.from_settings(settings) as registry:
        stage = str(registry.get(model_version).stage)
    Path(deployment.path).write_text(
        f"# Deployment\n\nmodel version **{model_version}** → stage **{stage}** "
        f"with **{canary_percent}%** of the traffic ({mode}).\n\n{detail}\n"
    )
    deployment.metadata.update(
        version=model_version, canary_percent=canary_percent, mode=mode, stage=stage
    )
    return mode


def _deploy_local_serving(
    settings: Settings, version: int, canary_percent: int
) -> tuple[str | None, str]:
    """Canary on the running local deployment, or (None, why not)."""
    try:
        from e2eai.serving.local import LocalServing
        from e2eai.serving.rollout import ModelSource
    except ImportError as exc:
        return None, f"local serving is not available ({exc})"
    from e2eai.errors import ServingError

    manager = LocalServing(settings)
    try:
        manager.state()
    except ServingError as exc:
        return None, str(exc)
    status = manager.deploy(ModelSource.from_registry(version), canary_percent)
    return "local-serving", f"canary behind the local router at {status.endpoint}"


def gate_failure_step(gates: ArtifactLike, decision: ArtifactLike) -> str:
    """Say why nothing was registered: the failed gates' reasons, as Markdown and a string."""
    failed = list(gates.metadata.get("failed") or [])
    if not failed:  # metadata does not always travel with an input artifact: read the file
        text = Path(gates.path).read_text()
        failed = [line for line in text.splitlines() if "**no**" in line]
    reasons = "; ".join(failed) or "the evaluation gates did not pass"
    Path(decision.path).write_text(
        "# Not registered, not deployed\n\n" + "\n".join(f"- {r}" for r in failed) + "\n"
    )
    decision.metadata["reasons"] = failed
    return reasons


__all__ = [
    "FeatureOutputs",
    "PrepareOutputs",
    "TrainingSetOutputs",
    "configure_step",
    "deploy_step",
    "evaluate_step",
    "export_step",
    "features_step",
    "gate_failure_step",
    "hpo_step",
    "prepare_step",
    "register_step",
    "train_step",
    "training_set_step",
]
