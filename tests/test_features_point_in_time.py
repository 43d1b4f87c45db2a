"""Point-in-time joins on a tiny hand-checkable example, through the real Feast repo.

A handful of synthetic flights and weather rows go through the real feature step
(``build_feature_tables``: trailing stats by ``delay_stats_snapshots``), a copy of the real
Feast repo (apply, DuckDB offline store) and ``training_set``. Every expected value below is
worked out by hand from the rows here, so the test would catch a join that looks ahead, a
TTL not honoured, or an arrival at the hour counted as "before" it.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_feature_repo, flight_settings

from e2eai.data.prepare import PREPARED
from e2eai.tasks.flights.feature_tables import build_feature_tables
from e2eai.tasks.flights.schema import (
    EVENT_TIMESTAMP,
    FLIGHT_ID,
    LABEL,
    WEATHER_FEATURES,
    stats_feature_names,
)
from e2eai.tasks.flights.trailing import delay_stats_snapshots

DAY = date(2013, 3, 1)
PRIOR, WEIGHT = 0.2, 5.0  # FeatureSettings defaults


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# (flight_id, scheduled departure, arrived_at, delayed, carrier, origin, dest, tailnum)
FLIGHTS = [
    # context: landed flights that may or may not count for the targets
    ("c1", "2013-02-28 05:00", "2013-02-28 10:00:00", 1, "UA", "EWR", "IAH", "N1"),
    ("c2", "2013-02-28 05:00", "2013-02-28 09:59:59", 1, "UA", "EWR", "IAH", "N1"),
    ("c3", "2013-03-01 06:00", "2013-03-01 09:59:59", 0, "UA", "EWR", "IAH", "N1"),
    ("c4", "2013-03-01 06:30", "2013-03-01 10:00:00", 0, "UA", "EWR", "IAH", "N1"),
    ("c5", "2013-03-01 07:00", "2013-03-01 09:30:00", 1, "AA", "EWR", "ORD", "N2"),
    # targets
    ("X", "2013-03-01 10:00", "2013-03-01 13:00:00", 1, "UA", "EWR", "IAH", "N1"),
    ("Y", "2013-03-01 10:59", "2013-03-01 14:30:00", 0, "UA", "EWR", "IAH", "N1"),
    ("V", "2013-03-01 11:00", "2013-03-01 15:00:00", 0, "UA", "EWR", "IAH", "N1"),
    ("U", "2013-03-01 13:30", "2013-03-01 16:00:00", 0, "UA", "EWR", "IAH", "N1"),
    ("Z", "2013-03-01 14:10", "2013-03-01 18:00:00", 0, "UA", "EWR", "IAH", "N1"),
    ("J", "2013-03-01 10:00", "2013-03-01 16:00:00", 1, "B6", "JFK", "LAX", "N-UNKNOWN"),
]

# (origin, hour, temp): EWR has no 10:00 observation; JFK only an early one.
WEATHER = [
    ("EWR", "2013-03-01 08:00", 10.0),
    ("EWR", "2013-03-01 09:00", 20.0),
    ("EWR", "2013-03-01 11:00", 40.0),
    ("JFK", "2013-03-01 06:00", 55.0),
]


def _rate(delayed: int, flights: int) -> float:
    return (delayed + PRIOR * WEIGHT) / (flights + WEIGHT)


def _write_prepared(directory: Path) -> None:
    """The tables the data stage would have written, for the synthetic rows above."""
    directory.mkdir(parents=True)
    flights = pd.DataFrame(
        [
            {
                FLIGHT_ID: fid,
                EVENT_TIMESTAMP: ts(dep),
                "arrived_at": ts(arr),
                "departed_at": ts(dep),  # on time: departure congestion is not under test here
                LABEL: np.int8(delayed),
                "carrier": carrier,
                "origin": origin,
                "dest": dest,
                "route": f"{origin}-{dest}",
                "tailnum": tail,
                "flight": float(100 + i),
                "distance": 1400.0,
                "arr_delay": 30.0 if delayed else 0.0,
                "dep_delay": 0.0,
            }
            for i, (fid, dep, arr, delayed, carrier, origin, dest, tail) in enumerate(FLIGHTS)
        ]
    )
    flights.to_parquet(directory / "flights.parquet", index=False)
    weather = pd.DataFrame(
        {
            "origin": [o for o, _, _ in WEATHER],
            EVENT_TIMESTAMP: [ts(h) for _, h, _ in WEATHER],
            **{f.name: np.float32(1.0) for f in WEATHER_FEATURES},
        }
    )
    weather["temp"] = np.array([t for _, _, t in WEATHER], dtype="float32")
    weather.to_parquet(directory / "weather.parquet", index=False)
    planes = pd.DataFrame(
        {
            "tailnum": ["N1", "N2"],
            "plane_year": np.array([2005, 1999], dtype="float32"),
            "seats": np.array([150, 55], dtype="float32"),
            "engines": np.array([2, 2], dtype="float32"),
            "engine_type": ["Turbo-fan", "Turbo-jet"],
        }
    )
    planes.to_parquet(directory / "planes.parquet", index=False)
    (directory / "manifest.json").write_text(json.dumps({"snapshot": "synthetic"}))


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory):
    """Settings and task of the synthetic rows, their features applied to a Feast repo."""
    from e2eai.tasks import load_task

    home = tmp_path_factory.mktemp("pit")
    settings = flight_settings(home, DAY, DAY)
    copy_feature_repo(settings.features.repo)
    _write_prepared(settings.data_dir / PREPARED)
    build_feature_tables(settings)
    task = load_task(settings)
    task.apply_features(settings)
    return settings, task


@pytest.fixture(scope="module")
def synthetic_rows(applied) -> pd.DataFrame:
    """Training rows of the synthetic targets, indexed by flight id."""
    settings, task = applied
    return task.training_set(settings, DAY, DAY).set_index(FLIGHT_ID)


def test_a_retrieval_asked_in_spans_equals_one_join(applied, synthetic_rows) -> None:
    """Spans of 2 entity rows: each span's feature reads cover its own rows' time span."""
    settings, task = applied
    features = settings.features.model_copy(update={"retrieval_chunk_rows": 2})
    spans = settings.model_copy(update={"features": features})
    chunked = task.training_set(spans, DAY, DAY).set_index(FLIGHT_ID)
    assert len(chunked) == len(synthetic_rows) > 2 * 3
    pd.testing.assert_frame_equal(chunked.loc[synthetic_rows.index], synthetic_rows)


def test_weather_is_the_latest_observation_at_or_before_departure(synthetic_rows) -> None:
    temp = synthetic_rows["temp"]
    assert temp["X"] == 20.0  # 10:00: the 09:00 reading; no 10:00 row, the 11:00 one is future
    assert temp["Y"] == 20.0  # 10:59: still 09:00; the 11:00 reading is a minute ahead
    assert temp["V"] == 40.0  # 11:00: a reading stamped exactly at departure is usable
    assert temp["U"] == 40.0  # 13:30: the 11:00 reading is 2.5 h old, inside the 3 h TTL


def test_weather_older_than_its_ttl_is_missing(synthetic_rows) -> None:
    assert np.isnan(synthetic_rows.loc["Z", "temp"])  # 14:10: the 11:00 reading is 3h10 old
    assert np.isnan(synthetic_rows.loc["J", "temp"])  # JFK 10:00: the 06:00 reading is 4 h old
    assert np.isnan(synthetic_rows.loc["J", "visib"])


def test_static_plane_attributes_join_on_tail_number(synthetic_rows) -> None:
    x, j = synthetic_rows.loc["X"], synthetic_rows.loc["J"]
    assert (x["plane_year"], x["seats"], x["engine_type"], x["plane_age"]) == (
        2005.0,
        150.0,
        "Turbo-fan",
        8.0,
    )
    assert np.isnan(j["seats"]) and np.isnan(j["plane_age"]) and j["engine_type"] is None


def _stats(row: pd.Series, entity: str, window: int) -> tuple[float, float]:
    count, rate = stats_feature_names(entity, window)
    return float(row[count]), float(row[rate])


@pytest.mark.parametrize(
    ("target", "entity", "window", "flights", "delayed"),
    [
        # X departs 10:00 ⇒ H = 10:00. 24 h window [02-28 10:00, 03-01 10:00):
        # c1 landed exactly at H-24h (in), c2 a second earlier (out), c3 at 09:59:59 (in),
        # c4 exactly at H (out: only arrivals strictly before H count).
        ("X", "route", 24, 2, 1),
        ("X", "route", 168, 3, 2),  # c1, c2, c3
        ("X", "carrier", 24, 2, 1),  # c5 is AA
        ("X", "origin", 24, 3, 2),  # c1, c3 and AA's c5 (EWR)
        ("X", "origin", 168, 4, 3),
        # Y departs 10:59 ⇒ H is still 10:00: c4 (landed 10:00) does not count yet.
        ("Y", "route", 24, 2, 1),
        # Z departs 14:10 ⇒ H = 14:00: c1, c2 left the 24 h window; c3, c4 and X (landed
        # 13:00) are in; Y (landed 14:30) is not.
        ("Z", "route", 24, 3, 1),
        ("Z", "route", 168, 5, 3),
        ("Z", "origin", 24, 4, 2),
        # J's route, carrier and origin never had a landed flight: no flights, the prior.
        ("J", "route", 24, 0, 0),
        ("J", "carrier", 168, 0, 0),
        ("J", "origin", 24, 0, 0),
    ],
)
def test_trailing_stats_count_only_arrivals_strictly_before_the_departure_hour(
    synthetic_rows, target: str, entity: str, window: int, flights: int, delayed: int
) -> None:
    count, rate = _stats(synthetic_rows.loc[target], entity, window)
    assert count == flights
    assert rate == pytest.approx(_rate(delayed, flights), abs=1e-6)


def test_an_arrival_exactly_at_the_departure_hour_does_not_count(synthetic_rows) -> None:
    """c4 landed on time exactly at X's departure hour, c1 delayed exactly 24 h before it.

    An "arrived at or before" rule would count c4 (3 flights); a window shifted to
    ``(H - w, H]`` would swap c1 for c4 (2 flights, none delayed). Only ``[H - w, H)`` gives
    2 flights with 1 delayed.
    """
    count, rate = _stats(synthetic_rows.loc["X"], "route", 24)
    assert count == 2
    assert rate == pytest.approx(_rate(1, 2), abs=1e-6)
    assert rate != pytest.approx(_rate(0, 2), abs=1e-6)


def test_a_flight_never_counts_towards_its_own_features(synthetic_rows) -> None:
    # X landed at 13:00 (delayed): it is in Z's route window but not in its own.
    x_count, _ = _stats(synthetic_rows.loc["X"], "route", 24)
    z_count, _ = _stats(synthetic_rows.loc["Z"], "route", 24)
    assert (x_count, z_count) == (2, 3)


def test_snapshot_values_change_only_when_an_arrival_enters_or_leaves() -> None:
    flights = pd.DataFrame(
        {
            "route": ["A-B", "A-B"],
            "arrived_at": [ts("2013-03-01 09:10"), ts("2013-03-01 09:50")],
            LABEL: np.array([1, 0], dtype="int8"),
        }
    )
    snapshots = delay_stats_snapshots(flights, "route", (24,), PRIOR, WEIGHT)
    counts = snapshots.set_index(EVENT_TIMESTAMP)["route_flights_24h"]
    changes = counts[counts.diff().fillna(counts) != 0]
    # Both landed in the 09:00 hour: they enter at 10:00 and leave 24 h later.
    assert changes.index.tolist() == [ts("2013-03-01 10:00"), ts("2013-03-02 10:00")]
    assert changes.tolist() == [2.0, 0.0]
    # Any other row (a re-stamp of an unchanged value) carries the value then in force.
    inside = (counts.index >= ts("2013-03-01 10:00")) & (counts.index < ts("2013-03-02 10:00"))
    assert (counts[inside] == 2.0).all() and (counts[~inside] == 0.0).all()
    rates = snapshots.set_index(EVENT_TIMESTAMP)["route_delay_rate_24h"]
    assert rates[inside].tolist() == pytest.approx([_rate(1, 2)] * int(inside.sum()), abs=1e-6)
    assert rates[~inside].tolist() == pytest.approx([_rate(0, 0)] * int((~inside).sum()), abs=1e-6)
