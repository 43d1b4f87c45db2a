"""The flight-delay task's schema: model inputs, label, entities, views, defined once.

Written in the generic vocabulary of :mod:`e2eai.schema`; :class:`~e2eai.tasks.flights.FlightTask`
hands it to every stage, so no stage imports these constants itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from e2eai.schema import Entity, Feature, FeatureView, RequestField

EVENT_TIMESTAMP = "event_timestamp"
"""Scheduled departure as a UTC timestamp: the instant a prediction is made for."""

LABEL = "delayed"
"""1 when the flight arrived ``data.delay_threshold_minutes`` or more late, else 0."""

FLIGHT_ID = "flight_id"
"""Stable id of one scheduled flight: ``YYYYMMDD-CARRIER-FLIGHT-ORIGIN``."""


ENTITIES: tuple[Entity, ...] = (
    Entity("origin", "origin", "Departure airport (FAA code) of a New York flight."),
    Entity("tailnum", "tailnum", "Aircraft tail number."),
    Entity("carrier", "carrier", "Two-letter airline code."),
    Entity("route", "route", "Origin and destination, 'EWR-IAH'."),
)

REQUEST_FIELDS: tuple[RequestField, ...] = (
    RequestField("carrier", "str", "Two-letter airline code, e.g. 'UA'.", max_length=3),
    RequestField("flight", "int", "Flight number.", minimum=1, maximum=9999),
    RequestField("origin", "str", "Departure airport, e.g. 'EWR'.", max_length=4),
    RequestField("dest", "str", "Arrival airport, e.g. 'IAH'.", max_length=4),
    RequestField("tailnum", "str", "Aircraft tail number, e.g. 'N14228'.", max_length=8),
    RequestField(
        "scheduled_departure", "datetime", "Scheduled departure, ISO 8601 with offset (or UTC)."
    ),
    RequestField("distance", "float", "Great-circle distance in miles.", minimum=1, maximum=5000),
)

STATS_HEARTBEAT = timedelta(days=1)
"""Trailing statistics are re-stamped at least this often, even when unchanged…"""
STATS_TTL = timedelta(days=2)
"""…so their feature views can have a short TTL, which keeps point-in-time joins small."""

ROTATION_VIEW = "aircraft_rotation"
ROTATION_WINDOW = timedelta(days=1)
"""A previous New York departure is the aircraft's previous leg only within this span."""

ROTATION_LEGS = 3
"""New York legs of the aircraft's day the rotation inputs describe: the previous one and up
to two before it (about half the flights have a previous leg in the window, a sixth a second
one, one in twenty a third; a fourth is rarer than one in a hundred)."""

FEATURE_VIEWS: tuple[FeatureView, ...] = (
    FeatureView(
        "origin_weather_hourly",
        "origin",
        timedelta(hours=3),
        "Hourly weather observed at the departure airport.",
    ),
    FeatureView(
        "plane_attributes",
        "tailnum",
        timedelta(0),  # Feast: 0 = never stale (registry attributes are static)
        "Static attributes of the aircraft from the FAA registry.",
    ),
    FeatureView(
        "route_delay_stats",
        "route",
        STATS_TTL,
        "Trailing arrival-delay rates of flights on the route that had already landed.",
    ),
    FeatureView(
        "carrier_delay_stats",
        "carrier",
        STATS_TTL,
        "Trailing arrival-delay rates of the airline's flights that had already landed.",
    ),
    FeatureView(
        "origin_delay_stats",
        "origin",
        STATS_TTL,
        "Trailing arrival-delay rates of flights from the airport that had already landed.",
    ),
    FeatureView(
        "origin_departure_stats",
        "origin",
        STATS_TTL,
        "Departure congestion: trailing departure-delay rates of flights that had already "
        "left the airport.",
    ),
    FeatureView(
        ROTATION_VIEW,
        "tailnum",
        # A row is stamped after its leg's scheduled departure, so one older than the
        # window describes a leg too old to count: the TTL loses nothing.
        ROTATION_WINDOW,
        f"The aircraft's latest New York departures (up to {ROTATION_LEGS}) as known at each hour: "
        "their schedules, and their departure and arrival delays once they had departed "
        "and landed.",
    ),
)

FEATURE_SERVICE = "flight_delay_model"
"""The Feast feature service that serves every feature-view input of the model."""

STATS_ENTITIES: tuple[str, ...] = ("route", "carrier", "origin")
"""Entities whose trailing delay rates are features."""

DEFAULT_WINDOWS_HOURS: tuple[int, ...] = (24, 168)

DEPARTURE_WINDOWS_HOURS: tuple[int, ...] = (1, 3)
"""Short windows of departure congestion at the origin (ground stops, storms)."""
DEPARTURE_STATS_VIEW = "origin_departure_stats"


@dataclass(frozen=True)
class StoredField:
    """A column a feature view stores that is not itself a model input.

    The task derives model inputs from it together with the request (the aircraft's last
    leg's schedule becomes minutes before *this* flight). ``int64`` keeps instants exact:
    float32 epoch seconds would be off by minutes. Earlier legs' instants may be null.
    """

    name: str
    dtype: Literal["int64", "float32"]
    description: str
    view: str


ROTATION_LEG_FIELDS: tuple[str, ...] = ("gap_minutes", "dep_delay", "arr_delay", "slack_minutes")
"""What the rotation inputs say about each leg, in the order of every leg's columns."""

_ORDINAL = {1: "", 2: "second ", 3: "third ", 4: "fourth ", 5: "fifth "}


def rotation_state_prefix(leg: int) -> str:
    """Prefix of the stored fields of the ``leg``-th latest leg (1: ``last_leg``)."""
    return "last_leg" if leg == 1 else f"last_leg{leg}"


def rotation_feature_names(leg: int) -> tuple[str, ...]:
    """The rotation inputs of the ``leg``-th previous leg (1: ``prev_leg_*``), in the order
    of ``ROTATION_LEG_FIELDS``."""
    prefix = "prev_leg" if leg == 1 else f"prev_leg{leg}"
    return tuple(f"{prefix}_{field}" for field in ROTATION_LEG_FIELDS)


def _leg_state(leg: int) -> tuple[StoredField, ...]:
    prefix, which = rotation_state_prefix(leg), _ORDINAL[leg]
    return (
        StoredField(
            f"{prefix}_scheduled_departure", "int64",
            f"Scheduled departure of the aircraft's {which}latest New York departure, UTC "
            "epoch seconds" + ("." if leg == 1 else "; null when there is none."),
            ROTATION_VIEW,
        ),
        StoredField(
            f"{prefix}_scheduled_arrival", "int64",
            "Its scheduled arrival at its destination, UTC epoch seconds.", ROTATION_VIEW,
        ),
        StoredField(
            f"{prefix}_dep_delay", "float32",
            "Its departure delay in minutes; null until it has departed.", ROTATION_VIEW,
        ),
        StoredField(
            f"{prefix}_arr_delay", "float32",
            "Its arrival delay in minutes; null until it has landed.", ROTATION_VIEW,
        ),
    )  # fmt: skip


ROTATION_STATE: tuple[StoredField, ...] = tuple(
    field for leg in range(1, ROTATION_LEGS + 1) for field in _leg_state(leg)
)
"""What ``aircraft_rotation`` stores per tail number (the latest ``ROTATION_LEGS`` legs, the
latest first); the rotation inputs derive from it."""


def _leg_features(leg: int) -> tuple[Feature, ...]:
    gap, dep, arr, slack = rotation_feature_names(leg)
    if leg == 1:
        leg_is = (
            "the aircraft's previous New York departure (scheduled before this flight's "
            "cut-off, within 24 h)"
        )
    else:
        leg_is = (
            f"the aircraft's {_ORDINAL[leg]}latest New York departure scheduled before this "
            "flight's cut-off (within 24 h)"
        )
    return (
        Feature(
            gap, "numeric", "derived",
            f"Minutes from {leg_is} to this one, both scheduled.", 0, 1440, nullable=True,
        ),
        Feature(
            dep, "numeric", "derived",
            f"The departure delay (minutes) of {'that previous leg' if leg == 1 else leg_is}, "
            "if it departed before the cut-off.",
            -1440, 1440, nullable=True,
        ),
        Feature(
            arr, "numeric", "derived",
            f"The arrival delay (minutes) of {'that previous leg' if leg == 1 else leg_is}, "
            "if it landed before the cut-off.",
            -1440, 1440, nullable=True,
        ),
        Feature(
            slack, "numeric", "derived",
            (
                "Slack left for the return leg: scheduled departure minus the previous leg's "
                "arrival as best known at the cut-off, minus its scheduled block time (the "
                "return flight's); below zero the aircraft cannot be back on time."
                if leg == 1
                else f"The same slack computed from {leg_is}: scheduled departure minus its "
                "arrival as best known at the cut-off, minus its scheduled block time."
            ),
            -3000, 1440, nullable=True,
        ),
    )  # fmt: skip


ROTATION_FEATURES: tuple[Feature, ...] = tuple(
    feature for leg in range(1, ROTATION_LEGS + 1) for feature in _leg_features(leg)
)
"""The aircraft-rotation inputs, leg by leg (the previous leg first); a leg's four are all
missing when the aircraft has no such leg."""

ROTATION_SEQUENCE: tuple[tuple[str, ...], ...] = tuple(
    rotation_feature_names(leg) for leg in range(ROTATION_LEGS, 0, -1)
)
"""The rotation inputs as a sequence of legs, the earliest first (what a recurrent model
reads): each step the ``ROTATION_LEG_FIELDS`` of one leg."""


def departure_feature_names(window_hours: int) -> tuple[str, str]:
    """Column names of the departures and smoothed departure-delay rate of a window."""
    return f"origin_departures_{window_hours}h", f"origin_dep_delay_rate_{window_hours}h"


def stats_defaults(windows_hours: tuple[int, ...], rate_prior: float) -> dict[str, float]:
    """Value of each trailing statistic when the store has none: no flights, prior rate."""
    defaults: dict[str, float] = {}
    names = [stats_feature_names(e, w) for e in STATS_ENTITIES for w in windows_hours]
    names += [departure_feature_names(w) for w in DEPARTURE_WINDOWS_HOURS]
    for count, rate in names:
        defaults[count], defaults[rate] = 0.0, rate_prior
    return defaults


def stats_feature_names(entity: str, window_hours: int) -> tuple[str, str]:
    """Column names of the flight count and smoothed delay rate of a trailing window."""
    return f"{entity}_flights_{window_hours}h", f"{entity}_delay_rate_{window_hours}h"


def _stats_features(windows_hours: tuple[int, ...]) -> tuple[Feature, ...]:
    features: list[Feature] = []
    for entity in STATS_ENTITIES:
        for window in windows_hours:
            count, rate = stats_feature_names(entity, window)
            view = f"{entity}_delay_stats"
            features.append(
                Feature(
                    count,
                    "numeric",
                    "feature_view",
                    f"{entity} flights landed in the trailing {window} h.",
                    0,
                    None,
                    view,
                )
            )
            features.append(
                Feature(
                    rate,
                    "numeric",
                    "feature_view",
                    f"Smoothed share of them delayed ({window} h).",
                    0,
                    1,
                    view,
                )
            )
    for window in DEPARTURE_WINDOWS_HOURS:
        count, rate = departure_feature_names(window)
        features.append(
            Feature(count, "numeric", "feature_view",
                    f"Flights that left the origin in the trailing {window} h.", 0, None,
                    DEPARTURE_STATS_VIEW)
        )  # fmt: skip
        features.append(
            Feature(rate, "numeric", "feature_view",
                    f"Smoothed share of them that left 15+ min late ({window} h).", 0, 1,
                    DEPARTURE_STATS_VIEW)
        )  # fmt: skip
    return tuple(features)


REQUEST_FEATURES: tuple[Feature, ...] = (
    Feature("carrier", "categorical", "request", "Airline."),
    Feature("origin", "categorical", "request", "Departure airport."),
    Feature("dest", "categorical", "request", "Arrival airport."),
    Feature("distance", "numeric", "request", "Distance in miles.", 1, 5000),
    Feature("dep_hour", "numeric", "derived", "Scheduled local departure hour.", 0, 23),
    Feature("day_of_week", "numeric", "derived", "Monday=0 … Sunday=6.", 0, 6),
    Feature("month", "numeric", "derived", "Month of the scheduled departure.", 1, 12),
    Feature("days_to_holiday", "numeric", "derived", "Days to the nearest US holiday.", 0, 366),
)

PLANE_FEATURES: tuple[Feature, ...] = (
    Feature("plane_year", "numeric", "feature_view", "Year built.", 1930, 2030, "plane_attributes"),
    Feature("seats", "numeric", "feature_view", "Seats.", 1, 1000, "plane_attributes"),
    Feature("engines", "numeric", "feature_view", "Number of engines.", 1, 8, "plane_attributes"),
    Feature(
        "engine_type", "categorical", "feature_view", "Engine type.", None, None, "plane_attributes"
    ),
)

DERIVED_PLANE_FEATURES: tuple[Feature, ...] = (
    Feature(
        "plane_age",
        "numeric",
        "derived",
        "Years since the plane was built.",
        0,
        100,
        nullable=True,  # derived from plane_year: missing when the plane is unknown
    ),
)

WEATHER_FEATURES: tuple[Feature, ...] = tuple(
    Feature(name, "numeric", "feature_view", description, lo, hi, "origin_weather_hourly")
    for name, description, lo, hi in (
        ("temp", "Temperature, °F.", -60, 140),
        ("dewp", "Dew point, °F.", -80, 100),
        ("humid", "Relative humidity, %.", 0, 100),
        ("wind_dir", "Wind direction, degrees.", 0, 360),
        ("wind_speed", "Wind speed, mph.", 0, 150),
        ("wind_gust", "Wind gust, mph (0 when none reported).", 0, 200),
        ("precip", "Precipitation, inches.", 0, 10),
        ("pressure", "Sea-level pressure, millibars.", 900, 1100),
        ("visib", "Visibility, miles.", 0, 10),
    )
)


def model_features(windows_hours: tuple[int, ...] = DEFAULT_WINDOWS_HOURS) -> tuple[Feature, ...]:
    """The model's input columns, in order."""
    return (
        REQUEST_FEATURES
        + PLANE_FEATURES
        + DERIVED_PLANE_FEATURES
        + WEATHER_FEATURES
        + _stats_features(windows_hours)
        + ROTATION_FEATURES
    )


def numeric_features(windows_hours: tuple[int, ...] = DEFAULT_WINDOWS_HOURS) -> list[str]:
    return [f.name for f in model_features(windows_hours) if f.kind == "numeric"]


def categorical_features(windows_hours: tuple[int, ...] = DEFAULT_WINDOWS_HOURS) -> list[str]:
    return [f.name for f in model_features(windows_hours) if f.kind == "categorical"]


def view_features(
    view: str, windows_hours: tuple[int, ...] = DEFAULT_WINDOWS_HOURS
) -> tuple[Feature, ...]:
    """Features stored in one Feast feature view."""
    if view not in {v.name for v in FEATURE_VIEWS}:
        raise KeyError(f"unknown feature view {view!r}")
    return tuple(f for f in model_features(windows_hours) if f.view == view)


def view_state(view: str) -> tuple[StoredField, ...]:
    """Stored fields of one Feast feature view that are not model inputs themselves."""
    if view not in {v.name for v in FEATURE_VIEWS}:
        raise KeyError(f"unknown feature view {view!r}")
    return tuple(s for s in ROTATION_STATE if s.view == view)


def feature_refs(windows_hours: tuple[int, ...] = DEFAULT_WINDOWS_HOURS) -> list[str]:
    """``view:field`` references of everything the model reads from Feast (the feature
    service): the feature-view inputs, then the stored fields derived inputs come from."""
    refs = [
        f"{f.view}:{f.name}" for f in model_features(windows_hours) if f.source == "feature_view"
    ]
    return refs + [f"{s.view}:{s.name}" for s in ROTATION_STATE]


def entity(name: str) -> Entity:
    for e in ENTITIES:
        if e.name == name:
            return e
    raise KeyError(f"unknown entity {name!r}")


def feature_view(name: str) -> FeatureView:
    for v in FEATURE_VIEWS:
        if v.name == name:
            return v
    raise KeyError(f"unknown feature view {name!r}")
