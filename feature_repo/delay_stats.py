"""Trailing delay rates: arrivals per route, carrier and origin (landed flights only), and
departure congestion per origin (flights that had already left)."""

from pathlib import Path

from entities import carrier, origin, route
from feast import FeatureView, FileSource

from e2eai.tasks.flights.definitions import feast_schema, source_path
from e2eai.tasks.flights.schema import EVENT_TIMESTAMP, feature_view

_REPO = Path(__file__).parent


def _stats_view(name: str, entity) -> FeatureView:
    view = feature_view(name)
    return FeatureView(
        name=view.name,
        entities=[entity],
        ttl=view.ttl,
        schema=feast_schema(view.name),
        source=FileSource(
            name=f"{view.name}_source",
            path=source_path(view.name, _REPO),
            timestamp_field=EVENT_TIMESTAMP,
        ),
        online=True,
        description=view.description,
    )


route_delay_stats = _stats_view("route_delay_stats", route)
carrier_delay_stats = _stats_view("carrier_delay_stats", carrier)
origin_delay_stats = _stats_view("origin_delay_stats", origin)
origin_departure_stats = _stats_view("origin_departure_stats", origin)
