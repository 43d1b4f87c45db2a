"""Trailing delay rates per entity (route, carrier, origin), free of leakage by construction.

Rates are published as hourly snapshots: the value stamped at hour ``H`` counts flights that
*landed* in ``[H - window, H)``. A point-in-time join takes the latest snapshot at or before a
flight's scheduled departure, so only flights that arrived strictly before it contribute.
A snapshot row is written only when a value changes (an arrival enters or leaves a window),
which keeps the tables small; a daily heartbeat row re-stamps unchanged values.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from e2eai.tasks.flights.schema import EVENT_TIMESTAMP, LABEL, STATS_HEARTBEAT, stats_feature_names

_HOUR = pd.Timedelta(hours=1)


def smoothed_rate(delayed: pd.Series, flights: pd.Series, prior: float, weight: float) -> pd.Series:
    """Delay share shrunk toward ``prior`` by ``weight`` pseudo-flights (stable for few flights)."""
    return ((delayed + prior * weight) / (flights + weight)).astype("float32")


def delay_stats_snapshots(
    flights: pd.DataFrame,
    entity: str,
    windows_hours: tuple[int, ...],
    prior: float,
    weight: float,
    *,
    at: str = "arrived_at",
    delayed: str = LABEL,
    names: Callable[[int], tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Snapshots ``[entity, event_timestamp, <count>, <rate>…]`` of trailing windows.

    ``flights`` needs the entity column, the event time ``at`` (UTC; by default the actual
    arrival) and the 0/1 column ``delayed``. ``names(window)`` gives the two column names
    (default: ``schema.stats_feature_names(entity, window)``). Besides a row whenever a value
    changes, every entity gets a heartbeat row at least every ``schema.STATS_HEARTBEAT``, so
    a point-in-time join with the views' short TTL always finds the current value.
    """
    names = names or (lambda window: stats_feature_names(entity, window))
    happened = flights.dropna(subset=[at])
    enters = happened[at].dt.floor("h") + _HOUR
    flags = happened[delayed].to_numpy().astype("int64")
    parts = []
    for window in windows_hours:
        count, _ = names(window)
        for sign, when in ((1, enters), (-1, enters + pd.Timedelta(hours=window))):
            parts.append(
                pd.DataFrame(
                    {
                        entity: happened[entity].to_numpy(),
                        EVENT_TIMESTAMP: when.to_numpy(),
                        f"{count}__n": sign,
                        f"{count}__delayed": sign * flags,
                    }
                )
            )
    events = pd.concat(parts, ignore_index=True).fillna(0)
    deltas = events.groupby([entity, EVENT_TIMESTAMP], sort=True).sum()
    totals = _with_heartbeats(deltas.groupby(level=0).cumsum().reset_index(), entity)

    out = totals[[entity, EVENT_TIMESTAMP]].copy()
    for window in windows_hours:
        count, rate = names(window)
        n = totals[f"{count}__n"].astype("float32")
        out[count] = n
        out[rate] = smoothed_rate(totals[f"{count}__delayed"], n, prior, weight)
    out[EVENT_TIMESTAMP] = pd.to_datetime(out[EVENT_TIMESTAMP], utc=True)
    return out.reset_index(drop=True)


def _with_heartbeats(totals: pd.DataFrame, entity: str) -> pd.DataFrame:
    """Add a row per entity at each heartbeat tick, carrying the value then in force."""
    ts = pd.to_datetime(totals[EVENT_TIMESTAMP], utc=True)
    totals = totals.assign(**{EVENT_TIMESTAMP: ts})
    ticks = pd.date_range(ts.min().floor("D"), ts.max().ceil("D"), freq=STATS_HEARTBEAT, tz="UTC")
    first_seen = totals.groupby(entity)[EVENT_TIMESTAMP].min()
    grid = pd.MultiIndex.from_product([first_seen.index, ticks], names=[entity, EVENT_TIMESTAMP])
    grid = grid.to_frame(index=False)
    grid = grid[grid[EVENT_TIMESTAMP] > grid[entity].map(first_seen)]
    combined = pd.concat([totals, grid], ignore_index=True)
    # Real rows first at equal timestamps, so a tick never overrides a change.
    combined["_tick"] = combined.drop(columns=[entity, EVENT_TIMESTAMP]).isna().all(axis=1)
    combined = combined.sort_values([entity, EVENT_TIMESTAMP, "_tick"], kind="stable")
    combined = combined.drop_duplicates([entity, EVENT_TIMESTAMP], keep="first")
    values = [c for c in combined.columns if c not in (entity, EVENT_TIMESTAMP, "_tick")]
    combined[values] = combined.groupby(entity)[values].ffill()
    return combined.drop(columns="_tick").reset_index(drop=True)
