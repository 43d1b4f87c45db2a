"""The feature service the flight-delay model reads, at training and at serving time."""

from delay_stats import (
    carrier_delay_stats,
    origin_delay_stats,
    origin_departure_stats,
    route_delay_stats,
)
from feast import FeatureService
from planes import plane_attributes
from rotation import aircraft_rotation
from weather import origin_weather_hourly

from e2eai.tasks.flights.schema import FEATURE_SERVICE

flight_delay_model = FeatureService(
    name=FEATURE_SERVICE,
    features=[
        origin_weather_hourly,
        plane_attributes,
        route_delay_stats,
        carrier_delay_stats,
        origin_delay_stats,
        origin_departure_stats,
        aircraft_rotation,
    ],
    description="Every feature-view input of the flight arrival-delay model.",
)
