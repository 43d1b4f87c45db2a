"""Entities: the business keys features hang off (from e2eai.tasks.flights.schema.ENTITIES)."""

from feast import Entity, ValueType

from e2eai.tasks.flights.schema import entity

_ORIGIN, _TAILNUM, _CARRIER, _ROUTE = (entity(n) for n in ("origin", "tailnum", "carrier", "route"))

origin = Entity(
    name=_ORIGIN.name,
    join_keys=[_ORIGIN.join_key],
    value_type=ValueType.STRING,
    description=_ORIGIN.description,
)
tailnum = Entity(
    name=_TAILNUM.name,
    join_keys=[_TAILNUM.join_key],
    value_type=ValueType.STRING,
    description=_TAILNUM.description,
)
carrier = Entity(
    name=_CARRIER.name,
    join_keys=[_CARRIER.join_key],
    value_type=ValueType.STRING,
    description=_CARRIER.description,
)
route = Entity(
    name=_ROUTE.name,
    join_keys=[_ROUTE.join_key],
    value_type=ValueType.STRING,
    description=_ROUTE.description,
)
