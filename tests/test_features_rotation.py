"""Aircraft rotation without leakage: the earlier legs' inputs recomputed by hand.

Definition (``e2eai.tasks.flights.rotation``): for a flight with tail number ``N`` scheduled
at ``T``, cut-off ``C = floor_hour(T)``, its previous leg is ``N``'s flight with the latest
scheduled departure before ``C`` (ties: the larger flight id), if scheduled within 24 h
before ``T``; its second and third previous legs are the second and third latest, under the
same rule. A leg's departure delay counts only if it departed strictly before ``C``, its
arrival delay only if it landed strictly before ``C``; the gap is ``T`` minus its scheduled
departure; the slack is ``T`` minus its best-known arrival at ``C`` (actual if landed, else
its scheduled arrival pushed back by its departure delay or by how overdue it was at ``C``,
and not before ``C``) minus its scheduled block time.

The values under test come from Feast: the point-in-time join of ``training_set`` (offline)
and the online store after a replay clock wrote the view hour by hour (online).
"""

from __future__ import annotations

import math
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from e2eai.tasks.flights.feature_tables import flights_as_requests
from e2eai.tasks.flights.rotation import rotation_inputs, rotation_snapshots
from e2eai.tasks.flights.schema import (
    EVENT_TIMESTAMP,
    FLIGHT_ID,
    ROTATION_FEATURES,
    ROTATION_LEGS,
    ROTATION_STATE,
    rotation_feature_names,
)

NAMES = [f.name for f in ROTATION_FEATURES]
LEGS = range(1, ROTATION_LEGS + 1)
GAP, DEP, ARR, SLACK = rotation_feature_names(1)
MINUTE = pd.Timedelta(minutes=1)


@pytest.fixture(scope="module")
def landed(flight_window_run) -> pd.DataFrame:
    """Every accepted flight of the window, as the data stage wrote it (the raw rows)."""
    return pd.read_parquet(flight_window_run.prepared.flights_path)


def by_hand(legs: pd.DataFrame, departure: pd.Timestamp) -> dict[str, float]:
    """The rotation inputs of a flight at ``departure`` from its tail's raw rows ``legs``,
    reading only what had happened before its cut-off: every leg's."""
    cutoff = departure.floor("h")
    before = legs[legs[EVENT_TIMESTAMP] < cutoff].sort_values([EVENT_TIMESTAMP, FLIGHT_ID])
    values: dict[str, float] = {}
    for leg in LEGS:
        names = rotation_feature_names(leg)
        if len(before) < leg or departure - before.iloc[-leg][EVENT_TIMESTAMP] > pd.Timedelta(
            hours=24
        ):
            values.update(dict.fromkeys(names, math.nan))
        else:
            values.update(zip(names, _leg_by_hand(before.iloc[-leg], departure), strict=True))
    return values


def _leg_by_hand(prev: pd.Series, departure: pd.Timestamp) -> tuple[float, ...]:
    """Gap, departure delay, arrival delay and slack from one earlier leg's raw row."""
    cutoff = departure.floor("h")
    departed = prev["departed_at"] < cutoff
    arrived = prev["arrived_at"] < cutoff
    scheduled_arrival = prev["arrived_at"] - prev["arr_delay"] * MINUTE
    if arrived:
        arrival = prev["arrived_at"]
    else:
        delay = prev["dep_delay"] if departed else max((cutoff - prev[EVENT_TIMESTAMP]) / MINUTE, 0)
        arrival = max(scheduled_arrival + delay * MINUTE, cutoff)
    return (
        (departure - prev[EVENT_TIMESTAMP]) / MINUTE,
        prev["dep_delay"] if departed else math.nan,
        prev["arr_delay"] if arrived else math.nan,
        (departure - arrival) / MINUTE - (scheduled_arrival - prev[EVENT_TIMESTAMP]) / MINUTE,
    )


@pytest.fixture(scope="module")
def expected(flight_window_run, landed: pd.DataFrame) -> pd.DataFrame:
    """By-hand inputs of 600 random training rows, plus every row whose previous leg the
    store says was still in the air or on the ground at the cut-off (rare: the sample would
    hold almost none), plus 100 rows with a third previous leg (one flight in twenty)."""
    training = flight_window_run.training
    pending = training[training[GAP].notna() & training[ARR].isna()]
    third_gap = rotation_feature_names(3)[0]
    third = training[training[third_gap].notna()]
    sample = pd.concat(
        [
            training.sample(600, random_state=13),
            pending,
            third.sample(min(len(third), 100), random_state=13),
        ]
    )
    sample = sample.drop_duplicates(FLIGHT_ID)
    legs = dict(tuple(landed.groupby("tailnum")))
    rows = []
    for _, row in sample.iterrows():
        own = legs[row["tailnum"]]
        values = by_hand(own, row[EVENT_TIMESTAMP])
        cutoff = row[EVENT_TIMESTAMP].floor("h")
        before = own[own[EVENT_TIMESTAMP] < cutoff].sort_values([EVENT_TIMESTAMP, FLIGHT_ID])
        counted = len(before) > 0 and not math.isnan(values[GAP])
        prev = before.iloc[-1] if counted else None
        rows.append(
            {
                FLIGHT_ID: row[FLIGHT_ID],
                **values,
                "in_the_air": counted and prev["departed_at"] < cutoff <= prev["arrived_at"],
            }
        )
    return pd.DataFrame(rows).set_index(FLIGHT_ID)


def _assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    for name in NAMES:
        got = actual[name].to_numpy(dtype=np.float64)
        want = expected[name].to_numpy(dtype=np.float64)
        wrong = ~((np.isnan(got) & np.isnan(want)) | (got == want))
        assert not wrong.any(), (
            f"{name}: {wrong.sum()} rows differ, e.g. "
            f"{list(actual.index[wrong][:3])}: {got[wrong][:3]} != {want[wrong][:3]}"
        )


def test_point_in_time_retrieval_equals_the_hand_computation(flight_window_run, expected) -> None:
    training = flight_window_run.training.set_index(FLIGHT_ID).loc[expected.index]
    for name in NAMES:
        assert training[name].dtype == np.float32, name
    _assert_same(training, expected)


def test_the_sample_covers_every_case(expected: pd.DataFrame) -> None:
    """The comparison means something: previous legs landed, in the air and absent occur."""
    has_prev = expected[GAP].notna()
    assert 0.2 < has_prev.mean() < 0.9
    assert expected.loc[has_prev, ARR].notna().sum() >= 100
    assert expected["in_the_air"].sum() >= 3
    assert (expected.loc[expected["in_the_air"], DEP].notna()).all()
    assert expected.loc[expected["in_the_air"], ARR].isna().all()
    assert (expected[SLACK] < 0).sum() >= 3  # aircraft that cannot be back on time
    assert expected[DEP].abs().gt(60).sum() >= 5  # real delays, not only zeros
    # Earlier legs: present for fewer flights, only when the previous one is, and earlier.
    for leg in LEGS[1:]:
        gap, dep, arr, _ = rotation_feature_names(leg)
        later_gap = rotation_feature_names(leg - 1)[0]
        assert expected[gap].notna().sum() >= 50, leg
        assert expected.loc[expected[gap].notna(), later_gap].notna().all()
        assert (expected[gap] >= expected[later_gap]).sum() == expected[gap].notna().sum()
        assert expected[arr].notna().sum() >= 40 and expected[dep].abs().gt(30).sum() >= 3


@pytest.mark.parametrize("leg", LEGS)
def test_events_at_or_after_the_cutoff_never_count(flight_window_run, landed, leg) -> None:
    """Every training row: an earlier leg's delay is present exactly when it departed (or
    landed) strictly before the cut-off. Checked against the raw rows of each leg."""
    gap, dep, arr, _ = rotation_feature_names(leg)
    training = flight_window_run.training
    cutoff = training[EVENT_TIMESTAMP].dt.floor("h")
    with_prev = training[training[gap].notna()]
    prev_scheduled = with_prev[EVENT_TIMESTAMP] - with_prev[gap].astype("float64") * MINUTE
    legs = landed.set_index(["tailnum", EVENT_TIMESTAMP]).sort_index()
    prev = legs.loc[list(zip(with_prev["tailnum"], prev_scheduled, strict=True))]
    prev = prev[~prev.index.duplicated(keep="last")]  # same-instant legs: data duplicates
    prev = prev.loc[list(zip(with_prev["tailnum"], prev_scheduled, strict=True))]
    at = cutoff.loc[with_prev.index].to_numpy()
    departed = prev["departed_at"].to_numpy() < at
    arrived = prev["arrived_at"].to_numpy() < at
    assert (with_prev[dep].notna().to_numpy() == departed).all()
    assert (with_prev[arr].notna().to_numpy() == arrived).all()
    assert (prev_scheduled < cutoff.loc[with_prev.index]).all()  # never the flight itself
    assert len(with_prev) >= 100
    if leg == 1:
        assert (~arrived).sum() >= 10
        # Events exactly at the cut-off occur in the real rows (and count as not yet happened).
        at_cutoff = (prev["departed_at"].to_numpy() == at) | (prev["arrived_at"].to_numpy() == at)
        assert at_cutoff.sum() >= 1


def test_rewriting_the_future_changes_nothing_before_it(landed: pd.DataFrame) -> None:
    """Rebuild the view from a world where everything from an hour ``H`` on is different
    (later legs gone, later departures and landings moved and their delays changed): the
    inputs of flights whose cut-off is ``H`` do not move."""
    hour = pd.Timestamp("2013-01-06 15:00", tz="UTC")
    asking = landed[landed[EVENT_TIMESTAMP].dt.floor("h") == hour]
    assert len(asking) >= 30
    future = landed[landed[EVENT_TIMESTAMP] < hour].copy()
    later_dep = future["departed_at"] >= hour
    later_arr = future["arrived_at"] >= hour
    future.loc[later_dep, "departed_at"] += pd.Timedelta(hours=5)
    future.loc[later_dep, "dep_delay"] += 300
    future.loc[later_arr, "arrived_at"] += pd.Timedelta(hours=7)
    future.loc[later_arr, "arr_delay"] += 420
    assert later_arr.sum() >= 20

    def inputs(flights: pd.DataFrame) -> pd.DataFrame:
        view = rotation_snapshots(flights).sort_values(EVENT_TIMESTAMP)
        joined = pd.merge_asof(
            asking[[FLIGHT_ID, "tailnum", EVENT_TIMESTAMP]].sort_values(EVENT_TIMESTAMP),
            view,
            on=EVENT_TIMESTAMP,
            by="tailnum",
        )
        departure = joined[EVENT_TIMESTAMP].to_numpy("datetime64[ns]").view("int64")
        stored = {s.name: joined[s.name] for s in ROTATION_STATE}
        return pd.DataFrame(rotation_inputs(departure, stored), index=joined[FLIGHT_ID])

    actual, rewritten = inputs(landed), inputs(pd.concat([future, asking]))
    _assert_same(rewritten, actual.loc[rewritten.index])
    assert actual[ARR].notna().sum() >= 5
    assert actual[rotation_feature_names(2)[0]].notna().sum() >= 2  # earlier legs rewritten too


def test_online_lookup_after_writes_up_to_an_hour_equals_the_offline_value(
    flight_window_run, tmp_path
) -> None:
    """A replay clock writes the view hour by hour into an empty online store; looked up once
    the clock reaches ``H``, flights departing in ``[H, H + 1 h)`` get their training values.
    A second earlier, the store lacks the rows stamped at ``H``: some flight still differs."""
    from e2eai.features.online_feed import OnlineFeed, serving_repo
    from e2eai.tasks.flights.definitions import source_file
    from e2eai.tasks.flights.store import entity_frame, online_model_input

    settings = flight_window_run.settings
    day = entity_frame(settings, date(2013, 1, 2), date(2013, 1, 10))
    # The hour whose departing flights most often need a row stamped at it.
    view = pd.read_parquet(settings.features.repo / source_file("aircraft_rotation"))
    stamped = day.assign(**{EVENT_TIMESTAMP: day[EVENT_TIMESTAMP].dt.floor("h")}).merge(
        view[["tailnum", EVENT_TIMESTAMP]], on=["tailnum", EVENT_TIMESTAMP]
    )
    hour = stamped[EVENT_TIMESTAMP].value_counts().idxmax()
    flights = day[day[EVENT_TIMESTAMP].dt.floor("h") == hour].set_index(FLIGHT_ID)
    trained = flight_window_run.training.set_index(FLIGHT_ID).loc[flights.index]
    assert len(flights) >= 30 and trained[ARR].notna().sum() >= 10

    repo = serving_repo(settings.features.repo, tmp_path / "serving")
    serving = settings.model_copy(
        update={"features": settings.features.model_copy(update={"repo": repo})}
    )
    feed = OnlineFeed(repo, datetime(2013, 1, 1, tzinfo=hour.tzinfo))
    assert "aircraft_rotation" in feed.views
    requests = flights_as_requests(flights)

    feed.advance((hour - pd.Timedelta(seconds=1)).to_pydatetime())
    early = online_model_input(serving, requests)
    differs = ~(
        (early[NAMES].isna() & trained[NAMES].isna()) | (early[NAMES] == trained[NAMES])
    ).all(axis=1)
    assert differs.any(), "no flight needed the rows stamped at H: the check below is idle"

    feed.advance(hour.to_pydatetime())
    online = online_model_input(serving, requests)
    for name in NAMES:
        assert online[name].dtype == np.float32, name
    _assert_same(online, trained)
