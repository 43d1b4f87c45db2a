"""Trailing delay rates per entity (route, carrier, origin), free of leakage by construction.

Rates are published as hourly snapshots: the value stamped at hour ``H`` counts flights that
*landed* in ``[H - window, H)``. A point-in-time join takes the latest snapshot at or before a
flight's scheduled departure, so only flights that arrived strictly before it contribute.
A snapshot row is written only when a value changes (an arrival enters or leaves a window),
which keeps the tables small.
"""

from __future__ import annotations

import pandas as pd

from e2eai.schema import EVENT_TIMESTAMP, LABEL, stats_feature_names

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
) -> pd.DataFrame:
    """Snapshots ``[entity, event_timestamp, <entity>_flights_<w>h, <entity>_delay_rate_<w>h…]``.

    ``flights`` needs the entity column, ``arrived_at`` (UTC) and the label.
    """
    landed = flights.dropna(subset=["arrived_at"])
    enters = landed["arrived_at"].dt.floor("h") + _HOUR
    parts = []
    for window in windows_hours:
        count, _ = stats_feature_names(entity, window)
        for sign, at in ((1, enters), (-1, enters + pd.Timedelta(hours=window))):
            parts.append(
                pd.DataFrame(
                    {
                        entity: landed[entity].to_numpy(),
                        EVENT_TIMESTAMP: at.to_numpy(),
                        f"{count}__n": sign,
                        f"{count}__delayed": sign * landed[LABEL].to_numpy().astype("int64"),
                    }
                )
            )
    events = pd.concat(parts, ignore_index=True).fillna(0)
    deltas = events.groupby([entity, EVENT_TIMESTAMP], sort=True).sum()
    totals = deltas.groupby(level=0).cumsum().reset_index()

    out = totals[[entity, EVENT_TIMESTAMP]].copy()
    for window in windows_hours:
        count, rate = stats_feature_names(entity, window)
        n = totals[f"{count}__n"].astype("float32")
        out[count] = n
        out[rate] = smoothed_rate(totals[f"{count}__delayed"], n, prior, weight)
    out[EVENT_TIMESTAMP] = pd.to_datetime(out[EVENT_TIMESTAMP], utc=True)
    return out.reset_index(drop=True)
