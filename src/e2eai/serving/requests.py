"""Prediction requests as a client sends them: the task's request fields, validated.

A request carries what the client knows when it asks (for flights: carrier, flight number,
route, scheduled departure, tail number); the task's enrichment turns it into model inputs.
Requests arrive as V1 instances (a list of objects) or V2 tensors; both become typed numpy
columns, or an :class:`~e2eai.errors.InvalidInferenceRequest` naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from e2eai.errors import InvalidInferenceRequest
from e2eai.schema import RequestField
from e2eai.serving.validation import (
    InputSpec,
    Tensor,
    categorical_column,
    decode_raw,
    numeric_column,
)

if TYPE_CHECKING:
    import pandas as pd


def _parse_timestamp(name: str, i: int, value: Any) -> datetime:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise InvalidInferenceRequest(
            name, f"row {i}: expected an ISO 8601 string, got {type(value).__name__}"
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInferenceRequest(
            name, f"row {i}: {value!r:.40} is not an ISO 8601 timestamp"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def request_column(field: RequestField, values: Sequence[Any]) -> np.ndarray:
    """One request field's values as a typed column (timestamps: naive UTC datetime64)."""
    name = field.name
    if field.type == "datetime":
        utc = [_parse_timestamp(name, i, v).replace(tzinfo=None) for i, v in enumerate(values)]
        return np.array(utc, dtype="datetime64[ns]")
    if field.type == "str":
        spec = InputSpec(name, "categorical", field.nullable, max_length=field.max_length or 64)
        return categorical_column(spec, values)
    spec = InputSpec(name, "numeric", field.nullable, field.minimum, field.maximum)
    column = numeric_column(spec, values)
    if field.type == "int":
        whole = np.isnan(column) | np.equal(np.mod(column, 1), 0)
        if not np.all(whole):
            raise InvalidInferenceRequest(name, "expected whole numbers")
        return column if field.nullable else column.astype(np.int64)
    return column


def request_columns(
    fields: Sequence[RequestField], columns: dict[str, Sequence[Any]], max_rows: int
) -> dict[str, np.ndarray]:
    """Validate request columns against ``fields`` into typed numpy arrays."""
    by_name = {f.name: f for f in fields}
    unknown = sorted(set(columns) - set(by_name))
    if unknown:
        raise InvalidInferenceRequest(unknown[0], f"unknown field (unknown: {', '.join(unknown)})")
    missing = [name for name in by_name if name not in columns]
    if missing:
        raise InvalidInferenceRequest(missing[0], f"missing field (missing: {', '.join(missing)})")
    rows = {len(v) for v in columns.values()}
    if len(rows) != 1:
        raise InvalidInferenceRequest(None, "fields have different numbers of rows")
    (n,) = rows
    if n == 0:
        raise InvalidInferenceRequest(None, "the request has no rows")
    if n > max_rows:
        raise InvalidInferenceRequest(None, f"{n} rows exceed the limit of {max_rows}", 413)
    return {name: request_column(field, columns[name]) for name, field in by_name.items()}


def requests_frame(
    fields: Sequence[RequestField], columns: dict[str, Sequence[Any]], max_rows: int
) -> pd.DataFrame:
    """Validated request columns as a DataFrame (timestamps tz-aware UTC)."""
    import pandas as pd

    frame = pd.DataFrame(request_columns(fields, columns, max_rows))
    for field in fields:
        if field.type == "datetime":
            frame[field.name] = frame[field.name].dt.tz_localize("UTC")
    return frame


def columns_of(request: Any) -> dict[str, Sequence[Any]]:
    """Columns from V1 instances (a list of objects) or V2 tensors."""
    if isinstance(request, list) and request and isinstance(request[0], Tensor):
        out: dict[str, Sequence[Any]] = {}
        for tensor in request:
            if tensor.raw is not None:
                out[tensor.name] = list(decode_raw(tensor))
            else:
                data = tensor.data
                out[tensor.name] = (
                    [v for row in data for v in row]
                    if (data and isinstance(data[0], list))
                    else data
                )
        return out
    if not isinstance(request, list) or not all(isinstance(r, dict) for r in request):
        raise InvalidInferenceRequest("instances", "must be a list of request objects")
    names = set().union(*(r.keys() for r in request)) if request else set()
    for i, row in enumerate(request):
        absent = [n for n in names if n not in row]
        if absent:
            raise InvalidInferenceRequest(absent[0], f"row {i}: missing field")
    return {name: [row[name] for row in request] for name in names}
