"""Drift of the model inputs, on Evidently, with a false-alarm rate that is controlled.

Evidently's defaults control no false-alarm rate across a window's inputs. With a reference
of at most 1,000 rows every column gets a test at p < 0.05, and its ``chisquare`` (and
``g_test``) are goodness-of-fit tests that take the reference counts as exact, which
inflates them further (a category the reference lacks gives p = 0). Above 1,000 rows it
compares normed Wasserstein or Jensen-Shannon distances with a fixed 0.1, which noise alone
exceeds in small windows. On random i.i.d. splits of ten real days of flights (38 inputs)
some column was flagged in 20 of 20 splits at 1,000 vs 1,000 rows and at 4,307 vs 300,
none at 4,307 vs 4,307 (``tests/test_monitoring_drift.py``, ``bench/bench_drift.py``).

Here every input gets a two-sample test through Evidently's stattest registry — Evidently's
Kolmogorov-Smirnov for a numeric input (conservative where values tie), and for a
categorical one scipy's chi-square test of homogeneity, registered with Evidently as
``chi2_homogeneity`` (categories too rare for the chi-square approximation are pooled).
The p-values are corrected across the m inputs with Holm's step-down procedure: under no
drift the chance that *any* input is flagged is at most ``alpha``, whatever the inputs'
dependence, so the chance that the drift share exceeds any policy threshold is too. Holm's
rejections are exactly the p-values at or below one common threshold, ``alpha / (m - k)``
with k the number rejected (``alpha / m`` when none is), which is the threshold reported.
Measured on the same splits: 0 of 20 at each of the three sizes.

A p-value alone flags shifts too small to matter once windows are large (at 20,000 rows a
shift of 0.08 standard deviations gives p ~ 1e-36), so a flagged input counts as drifted
only when its distance — Evidently's normed Wasserstein or Jensen-Shannon, the statistics
of its large-data default — also reaches a floor (0.1, Evidently's own threshold for them).
The floor only removes alarms, so the bound stands. Each side is sampled to at most
``max_rows`` rows, a size at which the test still finds every shift the floor admits.
Numeric inputs are compared on their present values (missing ones are dropped, as Evidently
does); a missing category is a category of its own.

The decision needs only the statistics; Evidently's report (one ``ValueDrift`` per input
with the method and threshold used, and the distance of every flagged input) renders a
Plotly figure per input, which is most of Evidently's cost on wide data, so it is built
when ``snapshot`` is first read (``save_drift`` does).
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from evidently.legacy.calculations.stattests.registry import StatTest

HOMOGENEITY = "chi2_homogeneity"
MIN_EXPECTED = 5.0
"""Categories expected fewer times than this on either side are pooled (Cochran's rule)."""
POOLED = "(pooled rare)"
MISSING = "(missing)"
KINDS = ("numeric", "categorical")


class DriftSettings(BaseModel):
    """How a window's model inputs are tested for drift against the reference rows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Chance that a window with no drift has any input flagged (Holm-corrected).",
    )
    numeric_test: Literal["ks", "cramer_von_mises"] = Field(
        "ks", description="Evidently's two-sample p-value test for numeric inputs."
    )
    categorical_test: Literal["chi2_homogeneity"] = Field(
        "chi2_homogeneity",
        description="Test for categorical inputs: chi-square homogeneity of the two samples "
        "(Evidently's chisquare and g_test take the reference as exact and are not offered).",
    )
    numeric_distance: Literal["wasserstein", "psi", "hellinger"] = Field(
        "wasserstein", description="Evidently's effect size for numeric inputs."
    )
    categorical_distance: Literal["jensenshannon", "psi", "hellinger", "TVD"] = Field(
        "jensenshannon", description="Evidently's effect size for categorical inputs."
    )
    min_numeric_distance: float = Field(
        0.1, ge=0, description="A flagged numeric input drifts only from this distance up."
    )
    min_categorical_distance: float = Field(
        0.1, ge=0, description="A flagged categorical input drifts only from this distance up."
    )
    alarm_share: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="A window is declared drifted when its weighted drift share exceeds this.",
    )
    max_rows: int = Field(
        20_000, ge=100, description="Rows sampled from each side at most (speed)."
    )
    seed: int = Field(0, description="Seed of that sampling.")

    def test(self, kind: str) -> str:
        return self.numeric_test if kind == "numeric" else self.categorical_test

    def distance(self, kind: str) -> str:
        return self.numeric_distance if kind == "numeric" else self.categorical_distance

    def min_distance(self, kind: str) -> float:
        return self.min_numeric_distance if kind == "numeric" else self.min_categorical_distance


@dataclass(frozen=True)
class FeatureDrift:
    """One input's evidence: its test's p-value against the corrected threshold, and its
    distance against the floor; drifted when both say so."""

    name: str
    kind: str  # "numeric" | "categorical"
    method: str  # Evidently's name of the test
    score: float  # the test's p-value
    threshold: float  # the Holm threshold the p-value was compared with
    drifted: bool
    distance_method: str = ""
    distance: float = 0.0
    min_distance: float = 0.0
    weight: float = 1.0


@dataclass(frozen=True)
class DriftResult:
    """A window's drift check: per-input evidence, the weighted share, Evidently's report."""

    features: list[FeatureDrift]
    share: float  # importance-weighted share of drifted inputs, in [0, 1]
    rows_reference: int
    rows_current: int
    seconds: float  # the check itself; rendering the report comes on top
    drift_detected: bool = False  # share > settings.alarm_share
    alarm_share: float = 0.0
    alpha: float = 0.05
    _build_snapshot: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def snapshot(self) -> Any:
        """Evidently's snapshot (``save_html`` / ``save_json`` / ``dict()``), built on first use."""
        if self._build_snapshot is None:
            raise ValueError("this drift result carries no Evidently report")
        return self._build_snapshot()

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures: the share, the verdict, the rows and each input's evidence."""
        return {
            "share": self.share,
            "drift_detected": self.drift_detected,
            "alarm_share": self.alarm_share,
            "alpha": self.alpha,
            "drifted": self.drifted,
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "seconds": round(self.seconds, 3),
            "features": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "method": f.method,
                    "score": f.score,
                    "threshold": f.threshold,
                    "distance_method": f.distance_method,
                    "distance": f.distance,
                    "min_distance": f.min_distance,
                    "weight": f.weight,
                    "drifted": f.drifted,
                }
                for f in self.features
            ],
        }


@dataclass(frozen=True)
class GroupedDriftReport:
    """A drift check whose columns fall into named groups (per-item statistics of images or
    messages, principal components of an embedding): the verdict, each column's evidence, and
    which group moved. A subclass names its groups and adds its own details to the summary."""

    drift: DriftResult

    @property
    def drift_detected(self) -> bool:
        return self.drift.drift_detected

    @property
    def drifted(self) -> list[str]:
        return self.drift.drifted

    def column(self, name: str) -> FeatureDrift:
        """The evidence of one column (KeyError for an unknown name)."""
        for feature in self.drift.features:
            if feature.name == name:
                return feature
        raise KeyError(
            f"no drift column {name!r}; columns: {[f.name for f in self.drift.features]}"
        )

    def column_groups(self) -> dict[str, tuple[str, ...]]:
        """Group name → its columns; the summary reports ``<group>_drifted`` for each."""
        return {}

    def summary_details(self) -> dict[str, Any]:
        """What the summary shows between the groups and the check's figures."""
        return {}

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the overall verdict, each group's, the details and every column's
        evidence."""
        drifted = set(self.drifted)
        return {
            "drift_detected": self.drift_detected,
            **{
                f"{group}_drifted": sorted(drifted & set(columns))
                for group, columns in self.column_groups().items()
            },
            **self.summary_details(),
            **self.drift.summary(),
        }


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    weights: dict[str, float] | None = None,
    *,
    settings: DriftSettings | None = None,
) -> DriftResult:
    """Test every input named in ``kinds`` ("numeric" / "categorical") of ``current``
    against ``reference``; ``weights`` (importance per input, None: equal) weight the share.

    Raises ValueError naming the input when one is missing from a side, has no values on a
    side, has an unknown kind, or lacks a usable weight.
    """
    settings = settings or DriftSettings()
    started = time.perf_counter()
    names = _validated_names(reference, current, kinds)
    weight = _weights(names, weights)
    ref = _prepared(reference, kinds, settings.max_rows, settings.seed)
    cur = _prepared(current, kinds, settings.max_rows, settings.seed + 1)
    pvalues, distances = {}, {}
    for name in names:
        kind = kinds[name]
        ref_col, cur_col = _values(ref, name, "reference"), _values(cur, name, "current")
        pvalues[name] = _statistic(settings.test(kind), kind, ref_col, cur_col)
        distances[name] = _statistic(settings.distance(kind), kind, ref_col, cur_col)
    threshold = holm_threshold(list(pvalues.values()), settings.alpha)
    features = [
        FeatureDrift(
            name=n,
            kind=kinds[n],
            method=settings.test(kinds[n]),
            score=pvalues[n],
            threshold=threshold,
            drifted=pvalues[n] <= threshold and distances[n] >= settings.min_distance(kinds[n]),
            distance_method=settings.distance(kinds[n]),
            distance=distances[n],
            min_distance=settings.min_distance(kinds[n]),
            weight=weight[n],
        )
        for n in names
    ]
    total = sum(weight.values())
    share = sum(weight[f.name] for f in features if f.drifted) / total
    return DriftResult(
        features=features,
        share=float(share),
        rows_reference=len(ref),
        rows_current=len(cur),
        seconds=time.perf_counter() - started,
        drift_detected=share > settings.alarm_share,
        alarm_share=settings.alarm_share,
        alpha=settings.alpha,
        _build_snapshot=functools.partial(_evidently_report, ref, cur, features),
    )


def holm_threshold(pvalues: list[float], alpha: float) -> float:
    """The common threshold of Holm's step-down procedure over ``pvalues`` at ``alpha``.

    Holm rejects the k smallest p-values while p_(i) <= alpha / (m - i + 1); those are
    exactly the p-values <= alpha / (m - k), and every other one is above it.
    """
    m = len(pvalues)
    rejected = 0
    for i, p in enumerate(sorted(pvalues)):
        if p > alpha / (m - i):
            break
        rejected += 1
    return alpha / max(m - rejected, 1)


def save_drift(result: DriftResult, html_path: Path, json_path: Path) -> None:
    """Write Evidently's page of the check (HTML) and its snapshot (JSON)."""
    for path in (html_path, json_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result.snapshot.save_html(str(html_path))
        result.snapshot.save_json(str(json_path))


def evidently_default_drift(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]
) -> list[FeatureDrift]:
    """Each input's verdict by Evidently's defaults, as ``DataDriftPreset()`` reaches it —
    the stattest Evidently picks for the column and the reference's size, at that test's
    default threshold, on the column without missing values — but without rendering the
    report: the baseline that the calibration is measured against."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently.legacy.calculations.stattests.registry import get_stattest

    verdicts = []
    for name in _validated_names(reference, current, kinds):
        kind, column_type = kinds[name], _column_type(kinds[name])
        ref_col, cur_col = (
            frame[name].replace([math.inf, -math.inf], math.nan).dropna()
            for frame in (reference, current)
        )
        stattest = get_stattest(ref_col, cur_col, column_type, None)
        with warnings.catch_warnings():
            # Evidently's chisquare divides by a category's zero reference count (p = 0).
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stattest(ref_col, cur_col, column_type, None)
        verdicts.append(
            FeatureDrift(
                name=name,
                kind=kind,
                method=stattest.name,
                score=float(result.drift_score),
                threshold=float(result.actual_threshold),
                drifted=bool(result.drifted),
            )
        )
    return verdicts


def _validated_names(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]
) -> list[str]:
    if not kinds:
        raise ValueError("no inputs to check for drift: `kinds` is empty")
    unknown = {n: k for n, k in kinds.items() if k not in KINDS}
    if unknown:
        raise ValueError(f"inputs of unknown kind {unknown}: use 'numeric' or 'categorical'")
    for side, frame in (("reference", reference), ("current", current)):
        missing = [n for n in kinds if n not in frame.columns]
        if missing:
            raise ValueError(f"the {side} rows lack the model input(s) {', '.join(missing)}")
        if len(frame) < 2:
            raise ValueError(f"the {side} rows are too few for a drift check ({len(frame)})")
    return list(kinds)


def _weights(names: list[str], weights: dict[str, float] | None) -> dict[str, float]:
    """Each input's weight in the share; all zero (a model that uses none): equal weights."""
    if weights is None:
        return dict.fromkeys(names, 1.0)
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"no drift weight for the input(s) {', '.join(missing)}")
    bad = {n: weights[n] for n in names if not (math.isfinite(weights[n]) and weights[n] >= 0)}
    if bad:
        raise ValueError(f"drift weights must be finite and >= 0: {bad}")
    if sum(weights[n] for n in names) == 0:
        return dict.fromkeys(names, 1.0)
    return {n: float(weights[n]) for n in names}


def _prepared(frame: pd.DataFrame, kinds: dict[str, str], max_rows: int, seed: int) -> pd.DataFrame:
    """The inputs only, at most ``max_rows`` sampled rows, numbers as float and categories as
    text (missing is a category of its own, as the model sees it)."""
    if len(frame) > max_rows:
        frame = frame.sample(max_rows, random_state=seed)
    out = {}
    for name, kind in kinds.items():
        column = frame[name]
        if kind == "numeric":
            out[name] = pd.to_numeric(column, errors="coerce").astype(float)
        else:
            out[name] = column.astype(object).where(column.notna(), MISSING).astype(str)
    return pd.DataFrame(out).reset_index(drop=True)


def _values(frame: pd.DataFrame, name: str, side: str) -> pd.Series:
    """The column as Evidently tests it (infinite and missing numbers dropped)."""
    column = frame[name]
    if pd.api.types.is_numeric_dtype(column):
        column = column.replace([math.inf, -math.inf], math.nan).dropna()
        if column.empty:
            raise ValueError(
                f"the {side} rows have no value of the numeric input {name!r} (all missing): "
                "nothing to compare; check how the rows were logged"
            )
    return column


def _statistic(method: str, kind: str, reference: pd.Series, current: pd.Series) -> float:
    """Evidently's registered ``method`` on the two samples (p-value or distance)."""
    stattest = _stattest(method, kind)
    with warnings.catch_warnings():
        # scipy's exact K-S gives way to the asymptotic one on large or tied samples: fine.
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
        result = stattest(reference, current, _column_type(kind), None)
    return float(result.drift_score)


@functools.cache
def _stattest(method: str, kind: str) -> StatTest:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently.legacy.calculations.stattests.registry import (
            StatTest,
            get_registered_stattest,
            register_stattest,
        )
        from evidently.legacy.core import ColumnType

    if method == HOMOGENEITY:
        register_stattest(
            StatTest(
                name=HOMOGENEITY,
                display_name="chi-square homogeneity p_value",
                allowed_feature_types=[ColumnType.Categorical],
            ),
            default_impl=_homogeneity,
        )
    return get_registered_stattest(method, _column_type(kind))


def _column_type(kind: str) -> Any:
    from evidently.legacy.core import ColumnType

    return ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical


def _homogeneity(
    reference: pd.Series, current: pd.Series, feature_type: Any, threshold: float
) -> tuple[float, bool]:
    """p-value of the chi-square test that both samples draw from one distribution.

    A category expected fewer than ``MIN_EXPECTED`` times on either side is pooled with the
    other rare ones, so that the chi-square approximation holds in the far tail that a
    corrected threshold reads.
    """
    from scipy.stats import chi2_contingency

    counts = pd.DataFrame(
        {"reference": reference.value_counts(), "current": current.value_counts()}
    ).fillna(0)
    expected = (
        counts.sum(axis=1).to_numpy()[:, None] * (counts.sum() / counts.sum().sum()).to_numpy()
    )
    rare = (expected < MIN_EXPECTED).any(axis=1)
    if rare.any():
        counts = pd.concat([counts[~rare], counts[rare].sum().to_frame(POOLED).T])
    if len(counts) < 2:
        return 1.0, False  # one category left: nothing can have moved
    p_value = float(chi2_contingency(counts.to_numpy().T, correction=False)[1])
    return p_value, p_value <= (0.05 if threshold is None else threshold)


def _evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[FeatureDrift]
) -> Any:
    """Evidently's report of the check: each input's test at its threshold, and the distance
    against the floor for the inputs whose test rejected (where the floor decided)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import ValueDrift

        for f in features:
            _stattest(f.method, f.kind)  # registered before Evidently looks the name up
        names = [f.name for f in features]
        definition = DataDefinition(
            numerical_columns=[f.name for f in features if f.kind == "numeric"],
            categorical_columns=[f.name for f in features if f.kind == "categorical"],
        )
        metrics = [
            ValueDrift(column=f.name, method=f.method, threshold=f.threshold) for f in features
        ]
        metrics += [
            ValueDrift(column=f.name, method=f.distance_method, threshold=f.min_distance)
            for f in features
            if f.score <= f.threshold
        ]
        return Report(metrics).run(
            current_data=Dataset.from_pandas(current[names], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[names], data_definition=definition),
        )
