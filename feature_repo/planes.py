"""Aircraft attributes from the FAA registry."""

from pathlib import Path

from entities import tailnum
from feast import FeatureView, FileSource

from e2eai.tasks.flights.definitions import feast_schema, source_path
from e2eai.tasks.flights.schema import EVENT_TIMESTAMP, feature_view

_REPO = Path(__file__).parent

_VIEW = feature_view("plane_attributes")

plane_source = FileSource(
    name="plane_attributes_source",
    path=source_path(_VIEW.name, _REPO),
    timestamp_field=EVENT_TIMESTAMP,
)

plane_attributes = FeatureView(
    name=_VIEW.name,
    entities=[tailnum],
    ttl=_VIEW.ttl,
    schema=feast_schema(_VIEW.name),
    source=plane_source,
    online=True,
    description=_VIEW.description,
)
