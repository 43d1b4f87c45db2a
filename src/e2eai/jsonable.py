"""Plain JSON from the values e2eai records: numpy, dates, paths, dataclasses, pydantic models.

The one conversion every JSON file, summary and ``--json`` output goes through. numpy is
not imported here (the CLI's start-up path stays light): arrays, numpy scalars and tensors
are recognised by their ``dtype`` and ``tolist``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import date, datetime, time
from enum import Enum
from pathlib import PurePath
from typing import Any

_SCALARS = (str, int, float, bool, type(None))


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (dict, list, str, int, float, bool, None), recursively.

    Handles numpy scalars and arrays, dates and datetimes (ISO 8601), paths, enums,
    dataclasses and pydantic models; raises TypeError for anything else. Also usable as
    ``json.dumps(..., default=to_jsonable)``.
    """
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy scalar/array, tensor
        return to_jsonable(value.tolist())
    if hasattr(value, "model_dump"):  # pydantic model
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    raise TypeError(f"cannot convert a {type(value).__name__} to JSON")


def _key(key: Any) -> str | int | float | bool | None:
    plain = to_jsonable(key)
    return plain if isinstance(plain, _SCALARS) else str(plain)


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` that converts what plain ``json`` cannot (see ``to_jsonable``)."""
    return json.dumps(to_jsonable(obj), **kwargs)
