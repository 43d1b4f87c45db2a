"""Aircraft rotation: what was known at a flight's cut-off about its aircraft's earlier legs.

The delay of the aircraft flying in is the strongest signal available before departure. All
flights here leave New York, so a tail number's *previous leg* is its latest New York
departure: for a flight scheduled at ``T`` with cut-off ``C = floor_hour(T)`` (as for every
other feature), the tail's flight with the latest scheduled departure before ``C``, counted
only if scheduled within ``schema.ROTATION_WINDOW`` (24 h) before ``T``. The legs before it
(the second and third latest departures scheduled before ``C``, up to
``schema.ROTATION_LEGS``) count under the same rule. From each leg:

- ``prev_leg*_gap_minutes``: ``T`` minus its scheduled departure;
- ``prev_leg*_dep_delay``: its departure delay if it departed strictly before ``C``;
- ``prev_leg*_arr_delay``: its arrival delay if it landed strictly before ``C``;
- ``prev_leg*_slack_minutes``: ``T`` minus its arrival at its destination as best known at
  ``C``, minus its scheduled block time (the return flight, assumed as long). The best-known
  arrival is the actual one if it had landed; else its scheduled arrival pushed back by its
  departure delay (if it had departed) or by how long it was overdue at ``C`` (if not), and
  never before ``C`` (it had not landed by then).

(``prev_leg_*`` is the previous leg, ``prev_leg2_*`` the one before, and so on.) A leg's four
are missing (NaN) when there is no such leg; the delays also when not yet known.

Stored per tail number in the ``aircraft_rotation`` view (``rotation_snapshots``) as the day
unfolds: a row stamped at hour ``H`` describes the tail's latest departures scheduled before
``H`` with what had happened to them before ``H``. A row is written whenever that changes (a
leg's schedule, departure or landing passes an hour boundary), so the row in force at ``T``
(stamped at or before ``T``, on the hour) is the state at ``C``. The gap and the slack depend
on the flight asking, so the view keeps each leg's schedule and ``rotation_inputs`` derives
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
    ROTATION_LEGS,
    ROTATION_WINDOW,
    rotation_feature_names,
    rotation_state_prefix,
)

_HOUR = pd.Timedelta(hours=1)
_NS_PER_S = 1_000_000_000


def leg_state_names(leg: int) -> tuple[str, str, str, str]:
    """Stored fields of the ``leg``-th latest leg: scheduled departure, scheduled arrival,
    departure delay, arrival delay."""
    prefix = rotation_state_prefix(leg)
    return (
        f"{prefix}_scheduled_departure",
        f"{prefix}_scheduled_arrival",
        f"{prefix}_dep_delay",
        f"{prefix}_arr_delay",
    )


SCHEDULED_DEPARTURE, SCHEDULED_ARRIVAL, DEP_DELAY, ARR_DELAY = leg_state_names(1)
GAP, PREV_DEP_DELAY, PREV_ARR_DELAY, SLACK = rotation_feature_names(1)


def _hour_after(instants: pd.Series) -> pd.Series:
    """The first hour boundary strictly after each instant: when it counts as 'before'."""
    return instants.dt.floor("h") + _HOUR


def scheduled_arrival(flights: pd.DataFrame) -> pd.Series:
    """Scheduled arrival (UTC) of each flight: its actual arrival less its arrival delay."""
    return flights["arrived_at"] - pd.to_timedelta(flights["arr_delay"], unit="min")


def rotation_snapshots(flights: pd.DataFrame, legs_kept: int = ROTATION_LEGS) -> pd.DataFrame:
    """Rows ``[tailnum, event_timestamp, last_leg*_*]`` of the ``aircraft_rotation`` view.

    ``flights`` are prepared flights (scheduled departure ``event_timestamp``, ``departed_at``,
    ``arrived_at``, ``dep_delay``, ``arr_delay``, UTC). Legs of one tail scheduled at the same
    instant are ordered by flight id (the later id is the latest leg). Each row holds the
    ``legs_kept`` latest legs, the latest first; a leg that does not exist is null.
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
            "dep_delay": legs["dep_delay"].astype("float32"),
            "arr_delay": legs["arr_delay"].astype("float32"),
        }
    ).sort_values(["scheduled", FLIGHT_ID], kind="stable")
    # Position of each leg in its tail's history: the legs before the latest are the
    # positions just below it.
    legs["position"] = legs.groupby("tailnum", sort=False).cumcount()
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
    latest = pd.merge_asof(
        stamps,
        legs[["tailnum", "scheduled", "position"]],
        left_on=EVENT_TIMESTAMP,
        right_on="scheduled",
        by="tailnum",
        allow_exact_matches=False,  # "scheduled before H", strictly
    )
    # An hour after an early departure can come before the tail's first scheduled leg:
    # no leg yet, nothing to store (the store having no row means the same).
    latest = latest.dropna(subset=["scheduled"])
    out = latest[["tailnum", EVENT_TIMESTAMP]].reset_index(drop=True)
    position = latest["position"].astype("int64").to_numpy()
    by_position = legs.set_index(["tailnum", "position"])
    at = out[EVENT_TIMESTAMP].to_numpy("datetime64[ns]")
    values: list[str] = []
    for leg in range(1, legs_kept + 1):
        wanted = pd.MultiIndex.from_arrays([out["tailnum"], position - (leg - 1)])
        state = by_position.reindex(wanted)  # a position below 0: no such leg, all NaN
        departed = state["departed_at"].to_numpy("datetime64[ns]") < at
        arrived = state["arrived_at"].to_numpy("datetime64[ns]") < at
        departure, arrival, dep_delay, arr_delay = leg_state_names(leg)
        out[departure] = _epoch_seconds(state["scheduled"], nullable=leg > 1)
        out[arrival] = _epoch_seconds(state["arrival_scheduled"], nullable=leg > 1)
        out[dep_delay] = state["dep_delay"].where(departed).to_numpy(dtype="float32")
        out[arr_delay] = state["arr_delay"].where(arrived).to_numpy(dtype="float32")
        values += [departure, arrival, dep_delay, arr_delay]
    out = out.sort_values(["tailnum", EVENT_TIMESTAMP], kind="stable").reset_index(drop=True)
    # Candidate hours where nothing changed (another leg's event, or a leg's departure
    # hour that follows its schedule hour) repeat the row before: dropped.
    same = out["tailnum"].eq(out["tailnum"].shift())
    for column in values:
        before = out[column].shift()
        same &= (out[column].eq(before) | (out[column].isna() & before.isna())).fillna(False)
    return out[~same].reset_index(drop=True)


def _epoch_seconds(instants: pd.Series, nullable: bool = False) -> pd.Series | np.ndarray:
    """UTC epoch seconds of each instant: int64, or nullable ``Int64`` when legs may lack."""
    ns = instants.to_numpy(dtype="datetime64[ns]")
    seconds = ns.view(np.int64) // _NS_PER_S
    if not nullable:
        return seconds.astype("int64")
    return pd.arrays.IntegerArray(seconds, mask=np.isnat(ns))


def _float64(values: Any, rows: int) -> np.ndarray:
    """Stored values as float64 (None / NA → NaN): epoch seconds stay exact."""
    if values is None:
        return np.full(rows, np.nan)
    if isinstance(values, pd.Series):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)  # a list with None: NaN


def rotation_inputs(departure_ns: np.ndarray, stored: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The rotation inputs (float32, NaN when missing) of flights departing at
    ``departure_ns`` (int64 UTC ns) from the ``aircraft_rotation`` values in force for them:
    four per leg, for ``ROTATION_LEGS`` legs.

    ``stored`` maps the view's fields to one value per flight (missing fields or values:
    the store had no row for the tail, or the tail no such leg).
    """
    rows = len(departure_ns)
    departure = departure_ns.astype(np.float64) / _NS_PER_S
    departure[departure_ns == np.iinfo(np.int64).min] = np.nan  # NaT
    cutoff = np.floor(departure / 3600.0) * 3600.0
    inputs: dict[str, np.ndarray] = {}
    for leg in range(1, ROTATION_LEGS + 1):
        scheduled, arrives, dep_delay, arr_delay = (
            _float64(stored.get(name), rows) for name in leg_state_names(leg)
        )
        inputs.update(_leg_inputs(leg, departure, cutoff, scheduled, arrives, dep_delay, arr_delay))
    return inputs


def _leg_inputs(
    leg: int,
    departure: np.ndarray,
    cutoff: np.ndarray,
    scheduled: np.ndarray,
    arrives: np.ndarray,
    dep_delay: np.ndarray,
    arr_delay: np.ndarray,
) -> dict[str, np.ndarray]:
    """Gap, delays and slack of one leg (epoch seconds and minutes, float64 in)."""
    gap = (departure - scheduled) / 60.0
    # The online store keeps a tail's last row however old: the window is applied here, so
    # both stores answer alike. A leg scheduled at or after the cut-off is never stored as
    # the state before it; the check guards against a row from the future all the same.
    with np.errstate(invalid="ignore"):
        counts = (gap <= ROTATION_WINDOW.total_seconds() / 60.0) & (scheduled < cutoff)
        block = (arrives - scheduled) / 60.0
        overdue = np.maximum((cutoff - scheduled) / 60.0, 0.0)
        expected_delay = np.where(np.isnan(dep_delay), overdue, dep_delay)
        expected_arrival = np.maximum(arrives + 60.0 * expected_delay, cutoff)
        arrival = np.where(np.isnan(arr_delay), expected_arrival, arrives + 60.0 * arr_delay)
        slack = (departure - arrival) / 60.0 - block
        names = rotation_feature_names(leg)
        return {
            name: np.where(counts, values, np.nan).astype(np.float32)
            for name, values in zip(names, (gap, dep_delay, arr_delay, slack), strict=True)
        }
