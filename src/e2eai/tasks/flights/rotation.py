"""Aircraft rotation: what was known at a flight's cut-off about its aircraft's previous leg.

The delay of the aircraft flying in is the strongest signal available before departure. All
flights here leave New York, so a tail number's *previous leg* is its latest New York
departure: for a flight scheduled at ``T`` with cut-off ``C = floor_hour(T)`` (as for every
other feature), the tail's flight with the latest scheduled departure before ``C``, counted
only if scheduled within ``schema.ROTATION_WINDOW`` (24 h) before ``T``. From it:

- ``prev_leg_gap_minutes``: ``T`` minus its scheduled departure;
- ``prev_leg_dep_delay``: its departure delay if it departed strictly before ``C``;
- ``prev_leg_arr_delay``: its arrival delay if it landed strictly before ``C``;
- ``prev_leg_slack_minutes``: ``T`` minus its arrival at its destination as best known at
  ``C``, minus its scheduled block time (the return flight, assumed as long). The best-known
  arrival is the actual one if it had landed; else its scheduled arrival pushed back by its
  departure delay (if it had departed) or by how long it was overdue at ``C`` (if not), and
  never before ``C`` (it had not landed by then).

All four are missing (NaN) when there is no previous leg; the delays also when not yet known.

Stored per tail number in the ``aircraft_rotation`` view (``rotation_snapshots``) as the day
unfolds: a row stamped at hour ``H`` describes the tail's latest departure scheduled before
``H`` with what had happened to it before ``H``. A row is written whenever that changes (a
leg's schedule, departure or landing passes an hour boundary), so the row in force at ``T``
(stamped at or before ``T``, on the hour) is the state at ``C``. The gap and the slack depend
on the flight asking, so the view keeps the leg's schedule and ``rotation_inputs`` derives
them, for training and serving alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from e2eai.tasks.flights.schema import (
    EVENT_TIMESTAMP,
    FLIGHT_ID,
    ROTATION_FEATURES,
    ROTATION_WINDOW,
)

_HOUR = pd.Timedelta(hours=1)
_NS_PER_S = 1_000_000_000

SCHEDULED_DEPARTURE, SCHEDULED_ARRIVAL, DEP_DELAY, ARR_DELAY = (
    "last_leg_scheduled_departure",
    "last_leg_scheduled_arrival",
    "last_leg_dep_delay",
    "last_leg_arr_delay",
)
GAP, PREV_DEP_DELAY, PREV_ARR_DELAY, SLACK = (f.name for f in ROTATION_FEATURES)


def _hour_after(instants: pd.Series) -> pd.Series:
    """The first hour boundary strictly after each instant: when it counts as 'before'."""
    return instants.dt.floor("h") + _HOUR


def scheduled_arrival(flights: pd.DataFrame) -> pd.Series:
    """Scheduled arrival (UTC) of each flight: its actual arrival less its arrival delay."""
    return flights["arrived_at"] - pd.to_timedelta(flights["arr_delay"], unit="min")


def rotation_snapshots(flights: pd.DataFrame) -> pd.DataFrame:
    """Rows ``[tailnum, event_timestamp, last_leg_*]`` of the ``aircraft_rotation`` view.

    ``flights`` are prepared flights (scheduled departure ``event_timestamp``, ``departed_at``,
    ``arrived_at``, ``dep_delay``, ``arr_delay``, UTC). Legs of one tail scheduled at the same
    instant are ordered by flight id (the later id is the latest leg).
    """
    legs = flights.dropna(subset=["tailnum"])
    legs = pd.DataFrame(
        {
            "tailnum": legs["tailnum"].astype(str),
            FLIGHT_ID: legs[FLIGHT_ID],
            "scheduled": legs[EVENT_TIMESTAMP],
            "arrival_scheduled": scheduled_arrival(legs),
            "departed_at": legs["departed_at"],
            "arrived_at": legs["arrived_at"],
            DEP_DELAY: legs["dep_delay"].astype("float32"),
            ARR_DELAY: legs["arr_delay"].astype("float32"),
        }
    ).sort_values(["scheduled", FLIGHT_ID], kind="stable")
    # The state of a tail can change only at the hour after one of its legs' schedule,
    # departure or landing: one candidate row there.
    stamps = pd.concat(
        [
            pd.DataFrame({"tailnum": legs["tailnum"], EVENT_TIMESTAMP: _hour_after(legs[c])})
            for c in ("scheduled", "departed_at", "arrived_at")
        ],
        ignore_index=True,
    ).dropna()
    stamps = stamps.drop_duplicates().sort_values(EVENT_TIMESTAMP, kind="stable")
    state = pd.merge_asof(
        stamps,
        legs,
        left_on=EVENT_TIMESTAMP,
        right_on="scheduled",
        by="tailnum",
        allow_exact_matches=False,  # "scheduled before H", strictly
    )
    # An hour after an early departure can come before the tail's first scheduled leg:
    # no leg yet, nothing to store (the store having no row means the same).
    state = state.dropna(subset=["scheduled"])
    state[DEP_DELAY] = state[DEP_DELAY].where(state["departed_at"] < state[EVENT_TIMESTAMP])
    state[ARR_DELAY] = state[ARR_DELAY].where(state["arrived_at"] < state[EVENT_TIMESTAMP])
    out = pd.DataFrame(
        {
            "tailnum": state["tailnum"],
            EVENT_TIMESTAMP: state[EVENT_TIMESTAMP],
            SCHEDULED_DEPARTURE: _epoch_seconds(state["scheduled"]),
            SCHEDULED_ARRIVAL: _epoch_seconds(state["arrival_scheduled"]),
            DEP_DELAY: state[DEP_DELAY].astype("float32"),
            ARR_DELAY: state[ARR_DELAY].astype("float32"),
        }
    )
    out = out.sort_values(["tailnum", EVENT_TIMESTAMP], kind="stable").reset_index(drop=True)
    # Candidate hours where nothing changed (another leg's event, or a leg's departure
    # hour that follows its schedule hour) repeat the row before: dropped.
    values = [SCHEDULED_DEPARTURE, SCHEDULED_ARRIVAL, DEP_DELAY, ARR_DELAY]
    same = out["tailnum"].eq(out["tailnum"].shift())
    for column in values:
        before = out[column].shift()
        same &= out[column].eq(before) | (out[column].isna() & before.isna())
    return out[~same].reset_index(drop=True)


def _epoch_seconds(instants: pd.Series) -> pd.Series:
    return (instants.to_numpy(dtype="datetime64[ns]").view(np.int64) // _NS_PER_S).astype("int64")


def _float64(values: Any, rows: int) -> np.ndarray:
    """Stored values as float64 (None / NA → NaN): epoch seconds stay exact."""
    if values is None:
        return np.full(rows, np.nan)
    if isinstance(values, pd.Series):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)  # a list with None: NaN


def rotation_inputs(departure_ns: np.ndarray, stored: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The four rotation inputs (float32, NaN when missing) of flights departing at
    ``departure_ns`` (int64 UTC ns) from the ``aircraft_rotation`` values in force for them.

    ``stored`` maps the view's fields to one value per flight (missing fields or values:
    the store had no row for the tail).
    """
    rows = len(departure_ns)
    departure = departure_ns.astype(np.float64) / _NS_PER_S
    departure[departure_ns == np.iinfo(np.int64).min] = np.nan  # NaT
    cutoff = np.floor(departure / 3600.0) * 3600.0
    leg = {name: _float64(stored.get(name), rows) for name in (SCHEDULED_DEPARTURE,
           SCHEDULED_ARRIVAL, DEP_DELAY, ARR_DELAY)}  # fmt: skip
    gap = (departure - leg[SCHEDULED_DEPARTURE]) / 60.0
    # The online store keeps a tail's last row however old: the window is applied here, so
    # both stores answer alike. A leg scheduled at or after the cut-off is never stored as
    # the state before it; the check guards against a row from the future all the same.
    counts = (gap <= ROTATION_WINDOW.total_seconds() / 60.0) & (leg[SCHEDULED_DEPARTURE] < cutoff)
    dep_delay, arr_delay = leg[DEP_DELAY], leg[ARR_DELAY]
    block = (leg[SCHEDULED_ARRIVAL] - leg[SCHEDULED_DEPARTURE]) / 60.0
    overdue = np.maximum((cutoff - leg[SCHEDULED_DEPARTURE]) / 60.0, 0.0)
    expected_delay = np.where(np.isnan(dep_delay), overdue, dep_delay)
    expected_arrival = np.maximum(leg[SCHEDULED_ARRIVAL] + 60.0 * expected_delay, cutoff)
    arrival = np.where(
        np.isnan(arr_delay), expected_arrival, leg[SCHEDULED_ARRIVAL] + 60.0 * arr_delay
    )
    slack = (departure - arrival) / 60.0 - block
    with np.errstate(invalid="ignore"):
        return {
            name: np.where(counts, values, np.nan).astype(np.float32)
            for name, values in (
                (GAP, gap),
                (PREV_DEP_DELAY, dep_delay),
                (PREV_ARR_DELAY, arr_delay),
                (SLACK, slack),
            )
        }
