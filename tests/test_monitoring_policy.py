"""The retraining policy: its error rates on real flights, its guards, each rule's boundary.

Real windows: the session's ten real January days, scored by a real Wide & Deep model
through the registry (its ONNX graph and importance weights, as monitoring reads them),
split at random into a pseudo-reference half — what the champion learnt on: its holdout
ROC-AUC, its positive rate, the rows drift is measured against — and a pseudo-window half,
i.i.d. by construction. The window goes through the real drift check and quality figures,
then ``decide``. Under no change the policy may fire in at most 5 % of the splits; change
injected into the window (another carrier mix, more delays, degraded predictions, stormy
weather) must fire it with the expected reason.

The boundary tests use hand-written window summaries: each fails if its rule is mutated
(the AUC estimate read instead of its upper bound, ``min_labelled`` dropped, the cooldown
ignored, a strict comparison loosened or tightened).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from app_fixtures import explaining_model
from scipy.stats import chi2_contingency

from e2eai.app.store import AppStore
from e2eai.config import RetrainingSettings, Settings
from e2eai.monitoring.drift import check_drift
from e2eai.monitoring.policy import (
    AUDIT_ACTION,
    RULES,
    ChampionState,
    RetrainDecision,
    decide,
    positive_rate_test,
    record_decision,
)
from e2eai.monitoring.quality import classification_quality
from e2eai.monitoring.reference import Reference, load_reference
from e2eai.registry import ModelRegistry
from e2eai.tasks import Task, load_task

SPLITS = 20
POWER_SPLITS = 5
DEFAULTS = RetrainingSettings()
NOW = datetime(2013, 1, 11, tzinfo=UTC)  # the day after the ten days
TRAINED_UNTIL = datetime(2013, 1, 9, tzinfo=UTC)  # the model learnt on Jan 1–8
WEATHER = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "pressure", "visib")
real = pytest.mark.slow


# -- real windows -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scored:
    """The ten days as a registered version's reference: its rows, its probabilities on them
    (its ONNX graph in ONNX Runtime) and its inputs' importance (the drift share's weights)."""

    reference: Reference
    task: Task

    def halves(self, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A random (pseudo-reference, pseudo-window) split; ``__p`` holds the probability."""
        rows = self.reference.frame.assign(__p=self.reference.probability)
        shuffled = rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        half = len(shuffled) // 2
        return shuffled.iloc[:half], shuffled.iloc[half:].reset_index(drop=True)

    def champion(self, reference_half: pd.DataFrame) -> ChampionState:
        """The champion as if ``reference_half`` were its reference and its holdout."""
        half = dataclasses.replace(
            self.reference,
            frame=reference_half.drop(columns="__p"),
            probability=reference_half["__p"].to_numpy(),
        )
        auc = quality(reference_half[self.task.label], reference_half["__p"])["roc_auc"]
        return ChampionState.from_reference(half, self.task, auc, TRAINED_UNTIL)

    def window(
        self,
        name: str,
        reference_half: pd.DataFrame,
        rows: pd.DataFrame,
        labels: np.ndarray | None = None,
        probabilities: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """``rows``' monitoring summary, as ``monitor_window`` writes it (with the rows' own
        labels and probabilities unless others are given)."""
        y = rows[self.task.label].to_numpy() if labels is None else labels
        p = rows["__p"].to_numpy() if probabilities is None else probabilities
        kinds = {f.name: f.kind for f in self.task.features}
        drift = check_drift(reference_half, rows, kinds, self.reference.importance)
        return {
            "window": name,
            "rows": len(rows),
            "labelled": len(y),
            "quality": quality(y, p),
            "drift": drift.summary(),
            "reference_version": self.reference.version,
        }


def quality(labels: Any, probabilities: Any) -> dict[str, Any]:
    return classification_quality(np.asarray(labels), np.asarray(probabilities), 0.5)


@pytest.fixture(scope="module")
def scored(flight_window_run, tmp_path_factory) -> Scored:
    home = tmp_path_factory.mktemp("policy")
    base = flight_window_run.settings.model_dump(exclude={"home", "artifacts", "registry"})
    settings = Settings.model_validate({**base, "home": home})
    task = load_task(settings)
    rows = home / "reference.parquet"
    flight_window_run.training.to_parquet(rows, index=False)
    onnx = explaining_model(flight_window_run)
    with ModelRegistry.from_settings(settings) as registry:
        version = registry.register(
            name="flight-delay",
            family="torch_mlp",
            artifacts={"model.onnx": onnx, "reference.parquet": rows},
            metrics={"roc_auc": 0.7},
            params={},
            lineage={"feature_service": "flight_delay_v1"},
            stage="champion",
        ).version
    return Scored(load_reference(settings, task, version), task)


SENSITIVE = RetrainingSettings(min_rate_change=0.03)
"""Label shifts of a few points count (the default asks for 0.17, above the weekly swing of
real flight delays): the injected changes move the positive rate by 0.07-0.08."""


def verdict(
    window: dict[str, Any],
    champion: ChampionState,
    settings: RetrainingSettings = DEFAULTS,
    last: datetime | None = None,
    busy: bool = False,
) -> RetrainDecision:
    return decide(window, champion, NOW, last, busy, settings)


@real
def test_random_splits_of_a_stationary_window_trigger_at_most_5_percent(
    scored: Scored, record_property
) -> None:
    reasons: Counter[str] = Counter()
    margins = []
    for seed in range(SPLITS):
        reference_half, window_half = scored.halves(seed)
        window = scored.window(f"split-{seed}", reference_half, window_half)
        decision = verdict(window, scored.champion(reference_half))
        reasons[str(decision.reason)] += 1
        e = decision.evidence
        # Every rule read real figures.
        assert not e["performance"]["note"] and e["label_shift"]["p_value"] is not None
        assert e["drift"]["share"] is not None and e["age"]["model_age_days"] == 2
        margins.append(e["performance"]["roc_auc_high"] - e["performance"]["floor"])
    triggered = SPLITS - reasons["None"]
    record_property("false_triggers", dict(reasons))
    print(
        f"false triggers: {triggered} of {SPLITS} ({dict(reasons)}); "
        f"smallest margin of the AUC bound over its floor {min(margins):+.4f}"
    )
    assert triggered <= 1, dict(reasons)


# -- power: change injected into a real window --------------------------------------------------


def another_carrier_mix(scored: Scored, rows: pd.DataFrame, seed: int) -> dict[str, Any]:
    """EV's flights ten times as likely (15 % of the traffic → about 64 %)."""
    weights = np.where(rows["carrier"] == "EV", 10.0, 1.0)
    return {"rows": rows.sample(len(rows), replace=True, weights=weights, random_state=seed)}


def more_delays(scored: Scored, rows: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Delayed flights 1.5 times as likely (positive rate ~0.19 → ~0.27), the model as good."""
    weights = np.where(rows[scored.task.label] == 1, 1.5, 1.0)
    return {"rows": rows.sample(len(rows), replace=True, weights=weights, random_state=seed)}


def flipped_labels(scored: Scored, rows: pd.DataFrame, seed: int) -> dict[str, Any]:
    """A tenth of the on-time flights relabelled delayed, at random."""
    rng = np.random.default_rng(seed)
    labels = rows[scored.task.label].to_numpy().copy()
    negatives = np.flatnonzero(labels == 0)
    labels[rng.choice(negatives, len(negatives) // 10, replace=False)] = 1
    return {"rows": rows, "labels": labels}


def degraded_predictions(scored: Scored, rows: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Half the rows' probabilities shuffled among themselves: a model half broken."""
    rng = np.random.default_rng(seed)
    probabilities = rows["__p"].to_numpy().copy()
    some = rng.choice(len(rows), len(rows) // 2, replace=False)
    probabilities[some] = rng.permutation(probabilities[some])
    return {"rows": rows, "probabilities": probabilities}


def stormy_weather(scored: Scored, rows: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Every weather input moved: colder, damper, windier, lower pressure, a third of the
    visibility."""
    storm = rows.copy()
    for name, change in {
        "temp": -15.0,
        "dewp": -15.0,
        "wind_speed": 10.0,
        "wind_gust": 15.0,
    }.items():
        storm[name] += change
    storm["pressure"] -= 15.0
    storm["wind_dir"] = (storm["wind_dir"] + 90.0) % 360
    storm["humid"] = np.minimum(storm["humid"] + 25.0, 100.0)
    storm["visib"] *= 0.3
    return {"rows": storm}


Injection = Callable[[Scored, pd.DataFrame, int], dict[str, Any]]
INJECTIONS: dict[str, tuple[Injection, set[str]]] = {
    # EV is late more often than most: its traffic is a label shift as well as drift.
    "another carrier mix": (another_carrier_mix, {"label_shift", "drift"}),
    "more delays": (more_delays, {"label_shift"}),
    "flipped labels": (flipped_labels, {"performance", "label_shift"}),
    "degraded predictions": (degraded_predictions, {"performance"}),
}


@real
@pytest.mark.parametrize("name", list(INJECTIONS))
def test_injected_change_fires_with_its_reason(scored: Scored, name: str, record_property) -> None:
    inject, expected = INJECTIONS[name]
    reasons = []
    for seed in range(100, 100 + POWER_SPLITS):
        reference_half, window_half = scored.halves(seed)
        changed = inject(scored, window_half, seed)
        changed["rows"] = changed["rows"].reset_index(drop=True)
        window = scored.window(f"{name}-{seed}", reference_half, **changed)
        decision = verdict(window, scored.champion(reference_half), SENSITIVE)
        reasons.append(decision.reason)
        assert decision.retrain and decision.reason in expected, decision.message
        assert decision.training_window == (NOW - timedelta(days=120), NOW)
        if name == "another carrier mix":
            # Drift is found, but with labels at hand the performance rules speak for it.
            assert "carrier" in decision.evidence["drift"]["drifted"]
            assert not decision.evidence["drift"]["fired"]
            assert decision.evidence["drift"]["note"].startswith("enough labels")
            # Before its outcomes arrive, the drift rule alone speaks for the window.
            unlabelled = {**window, "labelled": 0, "quality": None}
            assert verdict(unlabelled, scored.champion(reference_half), SENSITIVE).reason == "drift"
        if name == "flipped labels":  # the AUC falls and the rate rises: both rules fire
            assert decision.evidence["label_shift"]["fired"]
        if name == "more delays":
            assert not decision.evidence["performance"]["fired"]
    record_property("detected", {name: reasons})
    print(f"{name}: {reasons}")


@real
def test_stormy_weather_is_drift_the_default_share_weighs_as_minor(scored: Scored) -> None:
    """The check names every weather input, but they carry ~16 % of this model's importance:
    below the default share of 0.5, a policy that asks for 0.1 retrains."""
    reference_half, window_half = scored.halves(7)
    window = scored.window("storm", reference_half, **stormy_weather(scored, window_half, 7))
    champion = scored.champion(reference_half)
    weight = sum(scored.reference.importance[n] for n in WEATHER) / sum(
        scored.reference.importance.values()
    )

    default = verdict(window, champion)
    assert set(window["drift"]["drifted"]) == set(WEATHER)  # found, and nothing else
    assert window["drift"]["share"] == pytest.approx(weight)
    assert weight < DEFAULTS.drift_share and default.reason is None, default.message
    # With its labels the window's performance speaks, and it did not fall; before they
    # arrive, a policy that asks for 0.1 retrains for the drift.
    sensitive = RetrainingSettings(drift_share=0.1)
    assert verdict(window, champion, sensitive).reason is None
    unlabelled = {**window, "labelled": 0, "quality": None}
    early = verdict(unlabelled, champion, sensitive)
    assert early.retrain and early.reason == "drift", early.message
    always = RetrainingSettings(drift_share=0.1, drift_without_labels_only=False)
    assert verdict(window, champion, always).reason == "drift"
    print(
        f"stormy weather: drift share {weight:.3f}; default {default.outcome}, 0.1: {early.outcome}"
    )


# -- guards and the audit log, on a real degraded window ----------------------------------------


@pytest.fixture(scope="module")
def degraded(scored: Scored) -> tuple[dict[str, Any], ChampionState, pd.DataFrame]:
    """A real window whose predictions are half broken (the performance rule fires)."""
    reference_half, window_half = scored.halves(3)
    changed = degraded_predictions(scored, window_half, 3)
    window = scored.window("degraded", reference_half, **changed)
    return (
        window,
        scored.champion(reference_half),
        changed["rows"].assign(__p=changed["probabilities"]),
    )


@real
def test_a_retrain_is_held_back_by_the_cooldown_and_by_one_in_progress(degraded) -> None:
    window, champion, _ = degraded
    cooldown = timedelta(days=DEFAULTS.cooldown_days)

    assert verdict(window, champion).retrain
    inside = verdict(window, champion, last=NOW - cooldown + timedelta(hours=1))
    assert (inside.retrain, inside.reason, inside.blocked) == (False, "performance", "cooldown")
    assert inside.evidence["guard"]["cooldown_remaining_days"] == pytest.approx(1 / 24)
    assert inside.training_window is None and inside.outcome == "blocked"
    after = verdict(window, champion, last=NOW - cooldown)
    assert after.retrain and after.blocked is None
    running = verdict(window, champion, last=NOW - 2 * cooldown, busy=True)
    assert (running.retrain, running.blocked) == (False, "in_progress")
    both = verdict(window, champion, last=NOW - timedelta(days=1), busy=True)
    assert both.blocked == "in_progress"


@real
def test_too_few_labelled_rows_never_fire_the_performance_rule(scored: Scored, degraded) -> None:
    _, champion, rows = degraded
    few = rows.iloc[: DEFAULTS.min_labelled - 1]
    window = {
        "window": "few",
        "labelled": len(few),
        "quality": quality(few[scored.task.label], few["__p"]),
        "drift": None,
        "reference_version": champion.version,
    }
    decision = verdict(window, champion)
    performance = decision.evidence["performance"]
    assert performance["roc_auc_high"] < performance["floor"]  # it would, with more rows
    assert not performance["fired"] and decision.reason is None
    assert "fewer than 1000" in performance["note"]


@real
def test_every_decision_is_audited_with_its_evidence(degraded, tmp_path: Path) -> None:
    window, champion, _ = degraded
    store = AppStore(f"sqlite:///{tmp_path / 'app.db'}")
    store.migrate()
    try:
        calm = {**window, "quality": {**window["quality"], "roc_auc_high": 0.99}}
        decisions = [
            verdict(window, champion),
            verdict(window, champion, last=NOW - timedelta(days=2)),
            verdict(calm, champion),
        ]
        for decision in decisions:
            record_decision(store, decision)
        rows = store.list_audit()
    finally:
        store.close()
    assert [r["outcome"] for r in rows] == ["hold", "blocked", "retrain"]  # newest first
    assert {r["action"] for r in rows} == {AUDIT_ACTION} and {r["actor"] for r in rows} == {
        "monitor"
    }
    retrain = rows[2]
    assert retrain["reason"] == decisions[0].message and retrain["reason"].startswith("retrain")
    assert retrain["detail"] == json.loads(json.dumps(decisions[0].summary()))
    performance = retrain["detail"]["evidence"]["performance"]
    assert performance["roc_auc_high"] == window["quality"]["roc_auc_high"]
    assert performance["holdout_roc_auc"] == champion.holdout_roc_auc
    assert rows[1]["detail"]["evidence"]["guard"]["cooldown_remaining_days"] == pytest.approx(12)
    assert rows[0]["reason"].startswith("hold") and rows[0]["detail"]["reason"] is None


# -- each rule's boundary, on hand-written summaries --------------------------------------------

# Dyadic figures: holdout − δ is exact in binary, so "exactly at δ" is exactly at δ.
EXACT = RetrainingSettings(auc_drop=0.03125, min_rate_change=0.03125, risk_tolerance=0.03125)
HOLDOUT, FLOOR = 0.75, 0.71875
CHAMPION = ChampionState(
    version=3,
    holdout_roc_auc=HOLDOUT,
    reference_positive_rate=0.25,
    trained_until=NOW - timedelta(days=30),
    reference_rows=100_000,
)


def summary(
    *,
    auc: float | None = 0.74,
    high: float | None = 0.76,
    labelled: int = 5000,
    rate: float = 0.25,
    share: float | None = 0.0,
    version: int | None = 3,
    risk: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A window summary in ``monitor_window``'s shape; by default nothing is wrong."""
    quality = {
        "rows": labelled,
        "positive_rate": rate,
        "roc_auc": auc,
        "roc_auc_low": None if auc is None else auc - 0.02,
        "roc_auc_high": high,
    }
    drift = None if share is None else {"share": share, "drifted": [], "alpha": 0.05}
    return {
        "window": "2013-01-14_2013-01-21",
        "labelled": labelled,
        "quality": quality,
        "drift": drift,
        "reference_version": version,
        "risk": risk,
    }


def risk(*, lower: float = 0.125, upper: float = 0.125, n: int = 5000, version: int = 3) -> Any:
    """A tracked risk in ``track_risk``'s shape (dyadic, so upper + 0.03125 is exact)."""
    return {
        "version": version,
        "loss": "brier",
        "n": n,
        "mean": lower + 0.01,
        "lower": lower,
        "source_n": 12_000,
        "source_mean": upper - 0.01,
        "source_upper": upper,
        "alpha_source": 0.025,
        "alpha_target": 0.025,
        "first_alarm_row": None,
        "first_alarm_at": None,
        "first_alarm_window": None,
        "note": "",
    }


def fires(window: dict[str, Any], settings: RetrainingSettings = EXACT, **champion: Any) -> str:
    decision = decide(window, dataclasses.replace(CHAMPION, **champion), NOW, None, False, settings)
    return str(decision.reason)


def test_nothing_wrong_holds() -> None:
    decision = decide(summary(), CHAMPION, NOW, None, False, EXACT)
    assert (decision.retrain, decision.reason, decision.blocked) == (False, None, None)
    assert decision.outcome == "hold" and decision.message.startswith("hold v3")
    assert json.loads(json.dumps(decision.summary()))["evidence"]["age"]["model_age_days"] == 30


def test_performance_fires_only_when_the_upper_bound_is_below_holdout_minus_delta() -> None:
    assert fires(summary(auc=0.70, high=FLOOR)) == "None"  # exactly at δ: not below
    assert fires(summary(auc=0.70, high=np.nextafter(FLOOR, 0))) == "performance"
    assert fires(summary(auc=0.70, high=np.nextafter(FLOOR, 1))) == "None"
    # The estimate is δ below, but the interval reaches the floor: not evidence enough.
    assert fires(summary(auc=0.69, high=0.72)) == "None"
    assert fires(summary(auc=0.74, high=0.76), holdout_roc_auc=0.80) == "performance"


def test_performance_needs_min_labelled_rows_a_holdout_an_auc_and_the_champion() -> None:
    bad = {"auc": 0.60, "high": 0.62}
    assert fires(summary(**bad, labelled=1000)) == "performance"
    assert fires(summary(**bad, labelled=999)) == "None"
    assert fires(summary(**bad), holdout_roc_auc=None) == "None"
    assert fires(summary(auc=None, high=None)) == "None"  # one class: no AUC
    assert fires(summary(**bad, version=4)) == "None"  # answered by another version
    assert fires(summary(**bad, version=None)) == "performance"  # not known to be another


def test_label_shift_needs_significance_a_material_change_and_min_labelled() -> None:
    big = {"labelled": 100_000}
    assert fires(summary(rate=0.28125, **big)) == "label_shift"  # Δ exactly 0.03125
    assert fires(summary(rate=0.28125 - 1e-9, **big)) == "None"  # significant, too small
    assert fires(summary(rate=0.25 - 0.03125, **big)) == "label_shift"  # fewer delays too
    assert fires(summary(rate=0.40, labelled=999)) == "None"
    assert fires(summary(rate=0.40, labelled=1000)) == "label_shift"
    # Material but not significant: 1,000 rows against a reference of 100.
    assert fires(summary(rate=0.30, labelled=1000), reference_rows=100) == "None"


def test_label_shift_rejects_strictly_below_alpha() -> None:
    window = summary(rate=0.29, labelled=2000)
    _, p_value = positive_rate_test(2000, 0.29, 0.25, CHAMPION.reference_rows)
    assert 1e-6 < p_value < 0.01
    at = EXACT.model_copy(update={"label_shift_alpha": p_value})
    assert fires(window, at) == "None"  # p = alpha: not below
    above = EXACT.model_copy(update={"label_shift_alpha": float(np.nextafter(p_value, 1))})
    assert fires(window, above) == "label_shift"


def test_the_two_proportion_test_is_the_chi_square_test_of_the_two_by_two_table() -> None:
    rows, positives, reference_rows, reference_positives = 1500, 420, 4000, 1000
    test, p_value = positive_rate_test(
        rows, positives / rows, reference_positives / reference_rows, reference_rows
    )
    table = [
        [positives, rows - positives],
        [reference_positives, reference_rows - reference_positives],
    ]
    assert test == "two-proportion z"
    assert p_value == pytest.approx(chi2_contingency(table, correction=False)[1], rel=1e-9)
    # An unknown reference size: its rate taken as exact (an exact binomial test).
    exact_test, exact_p = positive_rate_test(rows, positives / rows, 0.25, None)
    assert exact_test == "exact binomial" and exact_p < p_value


def test_drift_fires_from_the_share_up_while_labels_are_too_few() -> None:
    few = EXACT.min_labelled - 1
    assert fires(summary(share=0.5, labelled=few)) == "drift"
    assert fires(summary(share=float(np.nextafter(0.5, 0)), labelled=few)) == "None"
    assert fires(summary(share=None, labelled=few)) == "None"  # no drift check on the window
    assert fires(summary(share=0.9, version=4, labelled=few)) == "None"  # another's reference
    # Enough labels: performance speaks for the window, unless drift is asked to as well.
    assert fires(summary(share=0.9, labelled=EXACT.min_labelled)) == "None"
    always = EXACT.model_copy(update={"drift_without_labels_only": False})
    assert fires(summary(share=0.5, labelled=EXACT.min_labelled), always) == "drift"


def test_risk_fires_only_when_the_lower_bound_exceeds_the_source_bound_plus_tolerance() -> None:
    at = 0.125 + 0.03125
    assert fires(summary(risk=risk(lower=at))) == "None"  # exactly at the tolerance
    assert fires(summary(risk=risk(lower=float(np.nextafter(at, 1))))) == "risk"
    assert fires(summary(risk=risk(lower=float(np.nextafter(at, 0))))) == "None"
    # No min_labelled: the bound is valid at every sample size.
    assert fires(summary(risk=risk(lower=0.5, n=10), labelled=10)) == "risk"
    decision = decide(summary(risk=risk(lower=0.5)), CHAMPION, NOW, None, False, EXACT)
    e = decision.evidence["risk"]
    assert (e["threshold"], e["tolerance"], e["source_upper"]) == (at, 0.03125, 0.125)
    assert "lower bound 0.5000 > holdout bound 0.1250 + 0.03125" in decision.message


def test_risk_speaks_only_for_the_champions_own_tracked_rows() -> None:
    assert fires(summary(risk=risk(lower=0.5, version=4))) == "None"
    assert fires(summary(risk=None)) == "None"
    assert fires(summary(risk=risk(lower=0.0, n=0))) == "None"  # nothing labelled yet
    no_source = {"version": 3, "note": "version 3 has no holdout.parquet or no model.onnx"}
    decision = decide(summary(risk=no_source), CHAMPION, NOW, None, False, EXACT)
    assert decision.reason is None
    assert decision.evidence["risk"]["note"].startswith("version 3 has no holdout")


def test_age_fires_from_max_age_days_on() -> None:
    limit = timedelta(days=EXACT.max_age_days)
    assert fires(summary(), trained_until=NOW - limit) == "age"
    assert fires(summary(), trained_until=NOW - limit + timedelta(seconds=1)) == "None"


def test_the_first_rule_that_fires_is_the_reason_and_every_rule_is_evaluated() -> None:
    old = {"trained_until": NOW - timedelta(days=365)}
    everything = {"auc": 0.6, "high": 0.62, "rate": 0.4, "share": 1.0}
    assert fires(summary(**everything, risk=risk(lower=0.5)), **old) == "risk"
    assert fires(summary(**everything), **old) == "performance"
    assert fires(summary(**{**everything, "high": 0.9}), **old) == "label_shift"
    unlabelled = {**everything, "high": 0.9, "rate": 0.25, "labelled": EXACT.min_labelled - 1}
    assert fires(summary(**unlabelled), **old) == "drift"
    assert fires(summary(high=0.9), **old) == "age"
    always = EXACT.model_copy(update={"drift_without_labels_only": False})
    decision = decide(
        summary(**everything, risk=risk(lower=0.5)),
        dataclasses.replace(CHAMPION, **old),
        NOW,
        None,
        False,
        always,
    )
    assert all(decision.evidence[r]["fired"] for r in RULES)
    assert RULES == ("risk", "performance", "label_shift", "drift", "age")


def test_the_cooldown_holds_a_rule_back_until_it_ends() -> None:
    drifted = summary(share=1.0, labelled=EXACT.min_labelled - 1)
    cooldown = timedelta(days=EXACT.cooldown_days)
    inside = decide(drifted, CHAMPION, NOW, NOW - cooldown + timedelta(seconds=1), False, EXACT)
    assert (inside.retrain, inside.reason, inside.blocked) == (False, "drift", "cooldown")
    assert inside.message.startswith("blocked by the cooldown")
    ended = decide(drifted, CHAMPION, NOW, NOW - cooldown, False, EXACT)
    assert (ended.retrain, ended.blocked) == (True, None)
    assert ended.training_window == (NOW - timedelta(days=EXACT.training_days), NOW)
    never = decide(drifted, CHAMPION, NOW, None, False, EXACT)
    assert never.retrain and never.evidence["guard"]["cooldown_remaining_days"] == 0
    no_cooldown = EXACT.model_copy(update={"cooldown_days": 0})
    assert decide(drifted, CHAMPION, NOW, NOW, False, no_cooldown).retrain


def test_one_retrain_at_a_time() -> None:
    busy = decide(summary(auc=0.6, high=0.62), CHAMPION, NOW, None, True, EXACT)
    assert (busy.retrain, busy.blocked, busy.outcome) == (False, "in_progress", "blocked")
    assert "already in progress" in busy.message
    calm = decide(summary(), CHAMPION, NOW, None, True, EXACT)
    assert (calm.blocked, calm.outcome) == (None, "hold")  # nothing to hold back


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match=r"now .* no time zone"):
        decide(summary(), CHAMPION, NOW.replace(tzinfo=None), None, False, EXACT)
    with pytest.raises(ValueError, match=r"last_retrain_at .* no time zone"):
        decide(summary(), CHAMPION, NOW, datetime(2013, 1, 1), False, EXACT)


def test_the_settings_are_a_section_of_the_platforms(monkeypatch) -> None:
    monkeypatch.setenv("E2EAI_RETRAINING__AUC_DROP", "0.05")
    settings = Settings()
    assert settings.retraining.auc_drop == 0.05
    assert settings.retraining.min_labelled == DEFAULTS.min_labelled == 1000
    assert (DEFAULTS.drift_share, DEFAULTS.cooldown_days, DEFAULTS.training_days) == (0.5, 14, 120)
    assert (DEFAULTS.risk_alpha, DEFAULTS.risk_tolerance, DEFAULTS.risk_loss) == (
        0.05,
        0.004,
        "brier",
    )
