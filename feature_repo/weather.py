"""Hourly weather at the departure airport."""

from pathlib import Path

from entities import origin
from feast import FeatureView, FileSource

from e2eai.tasks.flights.definitions import feast_schema, source_path
from e2eai.tasks.flights.schema import EVENT_TIMESTAMP, feature_view

_REPO = Path(__file__).parent

_VIEW = feature_view("origin_weather_hourly")

origin_weather_source = FileSource(
    name="origin_weather_hourly_source",
    path=source_path(_VIEW.name, _REPO),
    timestamp_field=EVENT_TIMESTAMP,
)

origin_weather_hourly = FeatureView(
    name=_VIEW.name,
    entities=[origin],
    ttl=_VIEW.ttl,
    schema=feast_schema(_VIEW.name),
    source=origin_weather_source,
    online=True,
    description=_VIEW.description,
)
