"""Monitoring windows: fixed-length spans of event time, aligned on an anchor day.

Windows are ``[anchor + k·window_days, anchor + (k+1)·window_days)`` in UTC, whatever day
the traffic starts on, so two passes (or two deployments) cut the same windows. A window
is complete once an event at or after its end has been logged: traffic arrives in event
order (live, or replayed), so nothing more will land in it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2eai.config import MonitoringSettings

Window = tuple[datetime, datetime]


def window_of(at: datetime, settings: MonitoringSettings) -> Window:
    """The window holding the instant ``at`` (tz-aware)."""
    anchor = datetime(settings.anchor.year, settings.anchor.month, settings.anchor.day, tzinfo=UTC)
    length = timedelta(days=settings.window_days)
    start = anchor + ((at - anchor) // length) * length
    return start, start + length


def complete_windows(
    first: datetime, last: datetime, after: datetime | None, settings: MonitoringSettings
) -> list[Window]:
    """Complete windows between the first and the last logged event, each starting at or
    after ``after`` (the end of the last window reported; None: from the first event)."""
    start, end = window_of(first, settings)
    if after is not None and after > start:
        start, end = window_of(after, settings)
    windows = []
    while end <= last:
        windows.append((start, end))
        start, end = end, end + (end - start)
    return windows


def window_name(window: Window) -> str:
    """``2013-05-06_2013-05-13`` (start day, end day exclusive): file names and labels."""
    start, end = window
    return f"{start:%Y-%m-%d}_{end:%Y-%m-%d}"
