"""Aircraft rotation: each tail's latest New York departures as known at each hour."""

from pathlib import Path

from entities import tailnum
from feast import FeatureView, FileSource

from e2eai.tasks.flights.definitions import feast_schema, source_path
from e2eai.tasks.flights.schema import EVENT_TIMESTAMP, ROTATION_VIEW, feature_view

_REPO = Path(__file__).parent

_VIEW = feature_view(ROTATION_VIEW)

aircraft_rotation = FeatureView(
    name=_VIEW.name,
    entities=[tailnum],
    ttl=_VIEW.ttl,
    schema=feast_schema(_VIEW.name),
    source=FileSource(
        name=f"{_VIEW.name}_source",
        path=source_path(_VIEW.name, _REPO),
        timestamp_field=EVENT_TIMESTAMP,
    ),
    online=True,
    description=_VIEW.description,
)
