"""Harmful-shift detection on the champion's risk (Podkopaev & Ramdas 2022): error rates on
real flights, read after every labelled row.

Real rows: the session's ten real January days (8,614 flights), scored by a real Wide & Deep
model through the registry (its ONNX graph in ONNX Runtime, as monitoring reads it); its
real holdout (Jan 9–10) bounds its source risk. Each run below is one deployment: a source
sample (what the champion's holdout would be) and a production stream read row by row,
simulated for many runs at once on the leading axis of the confidence sequence. What a
stream can see: a rise of the risk above tolerance + the source bound's width (0.004 +
~0.009 with ten days of holdout) — shifts below that are not what the rule is for.

Under no harmful shift the test may alarm in at most ``risk_alpha`` of the runs (5 %); the
assertion is on the upper end of the rate's 95 % Clopper–Pearson interval, so it fails when
the rate is credibly above alpha, not when one run is unlucky. Shifts that raise the loss
must alarm (with the delay measured); a shift that lowers it must not, however far it moves
the inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from app_fixtures import explaining_model

from e2eai.config import RetrainingSettings, Settings
from e2eai.monitoring.drift import check_drift
from e2eai.monitoring.policy import ChampionState, decide
from e2eai.monitoring.reference import Reference, load_holdout, load_reference
from e2eai.monitoring.risk import (
    RiskTracker,
    detect_harmful_shift,
    first_alarm,
    row_losses,
    source_risk,
    source_upper_bounds,
    target_lower_bounds,
)
from e2eai.registry import ModelRegistry
from e2eai.serving.canary_simulation import clopper_pearson
from e2eai.serving.sequential import CSState, brier_gap_for_auc, pr_pl_eb_update
from e2eai.tasks import Task, load_task
from e2eai.training.split import time_split

Shift = Callable[["Flights", np.ndarray, np.random.Generator], Any]

DEFAULTS = RetrainingSettings()
ALPHA, EPS = DEFAULTS.risk_alpha, DEFAULTS.risk_tolerance
RUNS = 2000  # false-alarm runs: see clopper_pearson
POWER_RUNS = 200
BLOCK = 100  # runs simulated at once (memory: BLOCK x rows floats per temporary)
FLIGHTS_PER_DAY = 861  # the ten days' 8,614 flights
WEEKS_4 = 28 * FLIGHTS_PER_DAY
real = pytest.mark.slow


def alarms_in_blocks(
    draw: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]],
    runs: int,
    eps_tol: float,
    seed: int,
) -> np.ndarray:
    """First-alarm rows of ``runs`` simulated deployments, ``BLOCK`` at a time; ``draw``
    gives (source losses, target losses) for a block of runs."""
    rng = np.random.default_rng(seed)
    rows = []
    for start in range(0, runs, BLOCK):
        source, target = draw(rng, min(BLOCK, runs - start))
        rows.append(detect_harmful_shift(source, target, eps_tol, ALPHA))
    return np.concatenate(rows)


# -- real rows ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Flights:
    """The ten days as a registered version scored them, and the version's own holdout."""

    reference: Reference
    holdout: Reference
    task: Task
    version: int

    @property
    def labels(self) -> np.ndarray:
        return self.reference.frame[self.task.label].to_numpy()

    @property
    def losses(self) -> np.ndarray:
        return row_losses(self.labels, self.reference.probability)


@pytest.fixture(scope="module")
def flights(flight_window_run, tmp_path_factory) -> Flights:
    home = tmp_path_factory.mktemp("risk")
    base = flight_window_run.settings.model_dump(exclude={"home", "artifacts", "registry"})
    settings = Settings.model_validate({**base, "home": home})
    task = load_task(settings)
    onnx = explaining_model(flight_window_run)
    rows, holdout = home / "reference.parquet", home / "holdout.parquet"
    flight_window_run.training.to_parquet(rows, index=False)
    # The explaining model's own split: Jan 1-8 to learn (and validate), Jan 9-10 held out.
    split = time_split(flight_window_run.training, task, date(2013, 1, 1), date(2013, 1, 8), 2, 2)
    split.holdout.to_parquet(holdout, index=False)
    with ModelRegistry.from_settings(settings) as registry:
        version = registry.register(
            name="flight-delay",
            family="torch_mlp",
            artifacts={"model.onnx": onnx, "reference.parquet": rows, "holdout.parquet": holdout},
            metrics={"roc_auc": 0.7},
            params={},
            lineage={"feature_service": "flight_delay_v1"},
            stage="champion",
        ).version
    return Flights(
        load_reference(settings, task, version),
        load_holdout(settings, task, version),
        task,
        version,
    )


@real
def test_the_source_bound_is_read_from_the_versions_own_holdout(flights: Flights) -> None:
    holdout = flights.holdout
    assert holdout.source == "holdout.parquet" and len(holdout.frame) == 1817
    source = source_risk(holdout.frame[flights.task.label], holdout.probability, ALPHA / 2)
    brier = float(np.mean((holdout.probability - holdout.frame[flights.task.label]) ** 2))
    assert source.n == 1817 and source.mean == pytest.approx(brier, abs=1e-12)
    assert source.mean < source.upper < source.mean + 0.03
    print(f"holdout Brier {source.mean:.4f}, upper bound at {ALPHA / 2}: {source.upper:.4f}")


# -- false alarms -------------------------------------------------------------------------------


@real
def test_random_splits_of_a_stationary_window_alarm_at_most_alpha(
    flights: Flights, record_property
) -> None:
    """2,000 random halvings of the ten days: the first half is the source, the second the
    production stream in random order (4,307 rows each, five days of traffic), its lower
    bound read after every row. Both halves come from one population, so the true risks
    are equal: H0 holds at its boundary with eps_tol = 0, and by eps_tol with the default.

    With 2,000 runs, k alarms give a 95 % Clopper–Pearson interval whose upper end is
    0.0018 at k = 0, 0.0079 at k = 8 and 0.060 at k = 100 (the rate of alpha itself): the
    assertion (upper end <= alpha) fails from 81 alarms (4.05 %) on.
    """
    losses = flights.losses
    half = len(losses) // 2

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        order = rng.permuted(np.broadcast_to(np.arange(len(losses)), (n, len(losses))), axis=1)
        shuffled = losses[order]
        return shuffled[:, :half], shuffled[:, half : 2 * half]

    figures = {}
    for eps in (0.0, EPS):
        rows = alarms_in_blocks(draw, RUNS, eps, seed=0)
        k = int((rows > 0).sum())
        low, high = clopper_pearson(k, RUNS)
        figures[eps] = (k, low, high)
        assert high <= ALPHA, (eps, k)
    record_property("false_alarms", figures)
    print(
        "false alarms over "
        + "; ".join(
            f"eps_tol={e:g}: {k}/{RUNS} (95 % CI {lo:.4f}-{hi:.4f})"
            for e, (k, lo, hi) in figures.items()
        )
    )


@real
def test_iid_draws_from_one_real_population_alarm_at_most_alpha(
    flights: Flights, record_property
) -> None:
    """The sharp null: source (4,307 rows) and production (8,614 rows, ten days of traffic)
    drawn with replacement from the same real losses, so the two risks are exactly equal,
    and eps_tol = 0. 2,000 runs: the same Clopper–Pearson reading as above (the assertion
    fails from 81 alarms, 4.05 %, on)."""
    losses = flights.losses

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return (
            losses[rng.integers(0, len(losses), (n, len(losses) // 2))],
            losses[rng.integers(0, len(losses), (n, len(losses)))],
        )

    rows = alarms_in_blocks(draw, RUNS, 0.0, seed=1)
    k = int((rows > 0).sum())
    low, high = clopper_pearson(k, RUNS)
    record_property("false_alarms_iid", (k, low, high))
    print(f"i.i.d. false alarms at eps_tol=0: {k}/{RUNS} (95 % CI {low:.4f}-{high:.4f})")
    assert high <= ALPHA, k


# -- shifts: harmful ones alarm, benign ones do not ---------------------------------------------


def flipped_labels(flights: Flights, rows: np.ndarray, rng: np.random.Generator) -> Any:
    """A tenth of the on-time flights relabelled delayed."""
    y = flights.labels[rows].copy()
    negatives = np.flatnonzero(y == 0)
    y[rng.choice(negatives, len(negatives) // 10, replace=False)] = 1
    return y, flights.reference.probability[rows], None


def shuffled_predictions(share: float) -> Shift:
    def shift(flights: Flights, rows: np.ndarray, rng: np.random.Generator) -> Any:
        p = flights.reference.probability[rows].copy()
        some = rng.choice(len(rows), int(len(rows) * share), replace=False)
        p[some] = rng.permutation(p[some])
        return flights.labels[rows], p, None

    shift.__doc__ = f"{share:.0%} of the rows' probabilities shuffled among themselves."
    return shift


def carrier_weights(carriers: dict[str, float]) -> Callable[[Flights, np.ndarray, Any], Any]:
    def shift(flights: Flights, rows: np.ndarray, rng: np.random.Generator) -> Any:
        carrier = flights.reference.frame["carrier"].to_numpy()[rows]
        weights = np.array([carriers.get(c, 1.0) for c in carrier])
        return flights.labels[rows], flights.reference.probability[rows], weights

    return shift


def more_delays(flights: Flights, rows: np.ndarray, rng: np.random.Generator) -> Any:
    """Delayed flights twice as likely (positive rate 0.19 -> 0.32), the model unchanged."""
    y = flights.labels[rows]
    return y, flights.reference.probability[rows], np.where(y == 1, 2.0, 1.0)


HARMFUL: dict[str, tuple[Shift, float]] = {  # the shift, the least share of runs to alarm
    # Rises of the risk by 0.05 or more: caught within a day or two, every time.
    "flipped labels": (flipped_labels, 1.0),
    "more delays": (more_delays, 1.0),
    # Rises by 0.025-0.03, twice the least a four-week stream can see (tolerance, source
    # and target widths): caught in most runs.
    # Covariate shift to hard rows: EV (Brier 0.19, a third delayed) ten times as likely.
    "EV ten times as likely": (carrier_weights({"EV": 10.0}), 0.95),
    # A broken model: its probabilities no longer belong to its rows.
    "shuffled predictions": (shuffled_predictions(1.0), 0.75),
}
# Covariate shift to easy rows: Delta, US Airways and Virgin America (Brier 0.02-0.08).
BENIGN: Shift = carrier_weights({"DL": 10.0, "US": 10.0, "VX": 10.0})


def shifted_streams(
    flights: Flights, shift: Shift, runs: int, length: int, seed: int, stationary: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """(source losses [runs, 8614], production losses [runs, stationary + length], the
    shifted population's mean loss). Each run draws its source (ten days' worth, what a
    holdout would be) from the real rows as they are, then production: ``stationary`` rows
    from them as they are, and ``length`` rows from them shifted (by its weights)."""
    rng = np.random.default_rng(seed)
    n = len(flights.labels)
    sources, targets, means = [], [], []
    for _ in range(runs):
        y, p, weights = shift(flights, np.arange(n), rng)
        shifted = row_losses(y, p)
        chance = None if weights is None else weights / weights.sum()
        sources.append(flights.losses[rng.integers(0, n, n)])
        before = flights.losses[rng.integers(0, n, stationary)]
        targets.append(np.concatenate([before, shifted[rng.choice(n, length, p=chance)]]))
        means.append(float(np.average(shifted, weights=weights)))
    return np.stack(sources), np.stack(targets), float(np.mean(means))


def detect_in_blocks(source: np.ndarray, target: np.ndarray, eps_tol: float) -> np.ndarray:
    return np.concatenate(
        [
            detect_harmful_shift(source[i : i + BLOCK], target[i : i + BLOCK], eps_tol, ALPHA)
            for i in range(0, len(source), BLOCK)
        ]
    )


@real
@pytest.mark.parametrize("name", list(HARMFUL))
def test_harmful_shifts_alarm_and_the_delay_is_measured(
    flights: Flights, name: str, record_property
) -> None:
    """200 deployments per shift, four weeks of shifted traffic each: at least the shift's
    share must alarm (200 of 200 bounds the miss rate below 1.8 %, the upper end of its 95 %
    Clopper–Pearson interval; 150 of 200, 0.75, has 0.69-0.81)."""
    shift, power = HARMFUL[name]
    source, target, mean = shifted_streams(flights, shift, POWER_RUNS, WEEKS_4, seed=2)
    rows = detect_in_blocks(source, target, EPS)
    detected = rows > 0
    low, high = clopper_pearson(int(detected.sum()), POWER_RUNS)
    delay = np.percentile(rows[detected], [50, 90]) if detected.any() else [np.nan, np.nan]
    record_property("delay_rows", {name: [float(d) for d in delay]})
    print(
        f"{name}: risk {flights.losses.mean():.4f} -> {mean:.4f}; detected "
        f"{detected.sum()}/{POWER_RUNS} (95 % CI {low:.3f}-{high:.3f}), delay median "
        f"{delay[0]:.0f} rows "
        f"({delay[0] / FLIGHTS_PER_DAY:.1f} days), 90th percentile {delay[1]:.0f}"
    )
    assert detected.mean() >= power, f"{(~detected).sum()} of {POWER_RUNS} missed"


@real
def test_a_shift_after_a_calm_week_is_caught_later_but_caught(flights: Flights) -> None:
    """The bound since deployment carries the calm rows: the same shift (flipped labels)
    after a week of stationary traffic takes longer to show than from the start, and no run
    alarms during the calm week. PrPl-EB's bets shrink like 1/sqrt(t log t), so the first
    week (a fifth of the rows) holds about 45 % of the weight after five weeks: in 100 runs
    at least 90 must alarm (93 do)."""
    (shift, _), week = HARMFUL["flipped labels"], 7 * FLIGHTS_PER_DAY
    source, early_target, _ = shifted_streams(flights, shift, 100, WEEKS_4, seed=3)
    _, target, _ = shifted_streams(flights, shift, 100, WEEKS_4, seed=3, stationary=week)
    early = detect_in_blocks(source, early_target, EPS)
    rows = detect_in_blocks(source, target, EPS)
    assert not ((rows > 0) & (rows <= week)).any()  # never before the change
    assert (rows > week).mean() >= 0.9
    after = np.median(rows[rows > 0] - week)
    print(
        f"flipped labels after a calm week: median delay {after:.0f} rows after the change "
        f"({after / FLIGHTS_PER_DAY:.1f} days), from the start {np.median(early):.0f}; "
        f"{(rows > 0).sum()}/100 caught in four weeks"
    )
    assert after > np.median(early)


@real
def test_a_benign_covariate_shift_moves_the_inputs_but_never_alarms(
    flights: Flights, record_property
) -> None:
    """Traffic moved to the easy carriers (DL, US, VX ten times as likely): the drift check
    flags the carrier, the risk falls, and in 500 deployments of two weeks the test never
    alarms, not even at eps_tol = 0 (0 of 500 has a 95 % Clopper–Pearson upper end of
    0.0074; the assertion, upper end <= alpha, fails from 16 alarms, 3.2 %, on)."""
    runs = 500
    source, target, mean = shifted_streams(flights, BENIGN, runs, WEEKS_4 // 2, seed=4)
    rows = detect_in_blocks(source, target, 0.0)
    k = int((rows > 0).sum())
    low, high = clopper_pearson(k, runs)
    record_property("benign_alarms", (k, low, high))
    assert mean < flights.losses.mean() and high <= ALPHA, k

    frame = flights.reference.frame
    easy = frame.sample(
        len(frame) // 2,
        replace=True,
        weights=np.where(frame["carrier"].isin(["DL", "US", "VX"]), 10.0, 1.0),
        random_state=4,
    )
    kinds = {f.name: f.kind for f in flights.task.features}
    drift = check_drift(frame, easy.reset_index(drop=True), kinds, flights.reference.importance)
    drifted = drift.summary()["drifted"]
    assert "carrier" in drifted
    print(
        f"benign shift: risk {flights.losses.mean():.4f} -> {mean:.4f}, alarms {k}/{runs} "
        f"(95 % CI {low:.4f}-{high:.4f}); {len(drifted)} drifted inputs, share "
        f"{drift.summary()['share']:.2f}"
    )


# -- through the tracker and the policy ---------------------------------------------------------


@real
def test_a_tracked_harmful_shift_retrains_with_its_figures(flights: Flights) -> None:
    """Windows of flipped-label traffic through :class:`RiskTracker` and ``decide``: the
    rule fires from the window of the first alarm on, with the row and time it happened.

    The wiring, not the power: the source is the model's real two-day holdout (Brier 0.107,
    calm days), against which the ten days would alarm unshifted too (0.141): a holdout of
    two days does not hold January's weather."""
    holdout = flights.holdout
    source = source_risk(holdout.frame[flights.task.label], holdout.probability, ALPHA / 2)
    tracker = RiskTracker(source, EPS, ALPHA / 2)
    rng = np.random.default_rng(5)
    rows = rng.permutation(len(flights.labels))
    y, p, _ = flipped_labels(flights, rows, rng)
    start = datetime(2013, 1, 14, tzinfo=UTC)
    times = [start + timedelta(minutes=10 * i) for i in range(len(rows))]
    champion = ChampionState(flights.version, 0.7, 0.2, start - timedelta(days=5))
    reasons = []
    for week in range(0, len(rows), 1000):
        status = tracker.update(
            y[week : week + 1000], p[week : week + 1000], times[week : week + 1000]
        )
        window = {
            "window": f"w{week}",
            "risk": {"version": flights.version, **status.model_dump()},
            "reference_version": flights.version,
        }
        decision = decide(window, champion, times[-1], None, False, DEFAULTS)
        reasons.append(decision.reason)
        risk = decision.evidence["risk"]
        assert risk["fired"] == status.alarm == (status.lower > source.upper + EPS)
    first = reasons.index("risk")
    assert set(reasons[first:]) == {"risk"}  # the bound only rises: it fires from then on
    assert first * 1000 < tracker.first_alarm_row <= (first + 1) * 1000
    assert tracker.first_alarm_at == times[tracker.first_alarm_row - 1]
    # The batch form agrees to the row.
    alone = detect_harmful_shift(
        row_losses(holdout.frame[flights.task.label], holdout.probability),
        row_losses(y, p),
        EPS,
        ALPHA,
    )
    assert int(alone) == tracker.first_alarm_row
    print(f"flipped labels: first alarm at row {tracker.first_alarm_row}: {decision.message}")


# -- pure statistics ----------------------------------------------------------------------------


def test_the_tolerance_is_the_brier_cost_of_the_performance_rules_auc_drop() -> None:
    gap = -brier_gap_for_auc(0.76, 0.76 - DEFAULTS.auc_drop, 0.2)
    assert pytest.approx(gap, abs=2e-4) == EPS


def test_the_tracker_in_chunks_and_saved_between_them_equals_one_pass() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.3).astype(int)
    p = np.clip(rng.random(3000) * 0.6 + 0.3 * y, 0, 1)  # poorer than the source below
    source = source_risk(y[:500], np.clip(0.8 * y[:500] + 0.1, 0, 1), 0.025)
    whole = RiskTracker(source, 0.0, 0.025)
    whole.update(y, p)
    chunked = RiskTracker(source, 0.0, 0.025)
    for i in range(0, 3000, 250):
        chunked = RiskTracker.from_dict(chunked.to_dict())
        chunked.update(y[i : i + 250], p[i : i + 250])
    assert chunked.status() == whole.status()
    assert whole.status().alarm and whole.first_alarm_row is not None
    losses = row_losses(y, p)
    lower = target_lower_bounds(losses, 0.025)
    assert whole.status().lower == lower[-1] and whole.status().mean == pytest.approx(losses.mean())
    assert whole.first_alarm_row == int(first_alarm(lower, source.upper))


def test_the_bounds_are_the_one_sided_sides_of_the_prpl_eb_sequence() -> None:
    """A one-sided bound at level d is the two-sided sequence's side at 2 d."""
    x = np.random.default_rng(1).random(400) ** 2
    lower, upper, _ = pr_pl_eb_update(x, 0.1, CSState.initial())
    assert np.array_equal(target_lower_bounds(x, 0.05), lower)
    assert source_upper_bounds(x, 0.05) == upper[-1]


def test_the_misclassification_loss_is_the_error_at_the_threshold() -> None:
    losses = row_losses([1, 0, 1, 0], [0.7, 0.7, 0.2, 0.2], "misclassification", 0.5)
    assert losses.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert row_losses([1, 0], [0.5, 0.5], "misclassification", 0.5).tolist() == [0.0, 1.0]
    assert row_losses([1, 0], [0.75, 0.25]).tolist() == [0.0625, 0.0625]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: row_losses([1, 0], [0.5, 1.2]), "probabilities"),
        (lambda: row_losses([1, 0], [0.5, float("nan")]), "probabilities"),
        (lambda: row_losses([1, 2], [0.5, 0.5]), "labels"),
        (lambda: row_losses([1, None], [0.5, 0.5]), "labels"),
        (lambda: row_losses([1, 0, 1], [0.5, 0.5]), "labels and probabilities"),
        (lambda: row_losses([1], [0.5], "log_loss"), "loss"),  # type: ignore[arg-type]
        (lambda: source_risk([], [], 0.025), "labels"),
        (lambda: RiskTracker(source_risk([1], [0.5], 0.025), -0.1, 0.025), "eps_tol"),
        (lambda: RiskTracker(source_risk([1], [0.5], 0.025), 0.0, 1.0), "alpha_target"),
        (
            lambda: RiskTracker(source_risk([1], [0.5], 0.025), 0.0, 0.025).update([1], [0.5], []),
            "event_times",
        ),
    ],
)
def test_bad_inputs_are_refused_naming_the_argument(call: Callable[[], Any], named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named}"):
        call()


def test_no_labelled_rows_yet_is_no_alarm() -> None:
    tracker = RiskTracker(source_risk([1, 0], [0.5, 0.5], 0.025), 0.0, 0.025)
    status = tracker.update([], [])
    assert (status.n, status.mean, status.lower, status.alarm) == (0, None, 0.0, False)
    assert status.first_alarm_row is None


def test_pandas_labels_are_read_like_arrays() -> None:
    y = pd.Series([1, 0, 1])
    assert row_losses(y, pd.Series([1.0, 0.0, 0.5])).tolist() == [0.0, 0.0, 0.25]
