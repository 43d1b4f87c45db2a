"""Inference-request validation derived from the schema: what the predictor accepts.

Every model input of the task (``task.features``) becomes an :class:`InputSpec` (name, V2
datatype, nullability, range). Requests arrive as V2 tensors (JSON, binary extension or gRPC)
or V1 instances; both are checked field by field and turned into the ONNX Runtime feed
(``[N, 1]`` float32 / string arrays). Anything wrong raises
:class:`~e2eai.errors.InvalidInferenceRequest` naming the field, never a bare exception that
would surface as a 500.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from e2eai.errors import InvalidInferenceRequest

if TYPE_CHECKING:
    from e2eai.tasks import Task

_DEFAULT_MAX_STRING = 64
_NUMERIC_DATATYPES = frozenset(
    {
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)
_NUMPY_OF_DATATYPE = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}


@dataclass(frozen=True)
class InputSpec:
    """What one model input accepts."""

    name: str
    kind: Literal["numeric", "categorical"]
    nullable: bool
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = _DEFAULT_MAX_STRING

    @property
    def v2_datatype(self) -> str:
        return "FP32" if self.kind == "numeric" else "BYTES"


@dataclass(frozen=True)
class Tensor:
    """One V2 input tensor as received: JSON ``data`` (possibly nested) or raw bytes."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Any = None
    raw: bytes | None = None


def model_input_specs(task: Task) -> tuple[InputSpec, ...]:
    """One spec per model input of ``task``, in its order."""
    max_lengths = {f.name: f.max_length for f in task.request_fields if f.max_length}
    return tuple(
        InputSpec(
            feature.name,
            feature.kind,
            feature.accepts_missing,
            feature.minimum,
            feature.maximum,
            max_lengths.get(feature.name) or _DEFAULT_MAX_STRING,
        )
        for feature in task.features
    )


def _reject(field: str | None, problem: str, status: int = 400) -> InvalidInferenceRequest:
    return InvalidInferenceRequest(field, problem, status)


def _flatten(name: str, data: Any) -> list[Any]:
    """V2 JSON ``data`` may be flat or nested by shape; the contract's inputs are [N] or [N,1]."""
    if not isinstance(data, list):
        raise _reject(name, f"'data' must be a list, got {type(data).__name__}")
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        for row in data:
            if not isinstance(row, list):
                raise _reject(name, "'data' mixes nested and flat values")
            flat.extend(row)
        return flat
    return data


def numeric_column(spec: InputSpec, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Validate one numeric column and return it as float32 (NaN = missing where allowed)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        array = values.astype(np.float64, copy=False).reshape(-1)
    else:
        array = np.asarray(values)
        if array.dtype.kind not in "fiu":
            # Mixed/None/strings: check each value so that the message names what is wrong.
            for i, value in enumerate(values):
                if value is None:
                    if not spec.nullable:
                        raise _reject(spec.name, f"row {i}: value is required (got null)")
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    raise _reject(
                        spec.name,
                        f"row {i}: expected a number, got {type(value).__name__} {value!r:.40}",
                    )
            array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        array = array.astype(np.float64, copy=False).reshape(-1)
    result = array.astype(np.float32)
    finite = np.isfinite(result)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        infinite = bad[np.isinf(result[bad])]
        if infinite.size:
            raise _reject(spec.name, f"row {int(infinite[0])}: infinite value is not allowed")
        if not spec.nullable:
            raise _reject(spec.name, f"row {int(bad[0])}: NaN/missing value is not allowed")
    if spec.minimum is not None or spec.maximum is not None:
        lo = -np.inf if spec.minimum is None else spec.minimum
        hi = np.inf if spec.maximum is None else spec.maximum
        with np.errstate(invalid="ignore"):
            out = (result < lo) | (result > hi)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise _reject(
                spec.name,
                f"row {i}: value {float(array[i])!r} is outside [{spec.minimum}, {spec.maximum}]",
            )
    return result


def categorical_column(spec: InputSpec, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Validate one categorical column and return it as an object array of str."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _reject(spec.name, f"row {i}: not valid UTF-8") from exc
        if value is None or value == "":
            if not spec.nullable:
                raise _reject(spec.name, f"row {i}: value is required (got {value!r})")
            value = ""  # the ONNX graph treats the empty string as an unknown category
        elif not isinstance(value, str):
            raise _reject(
                spec.name, f"row {i}: expected a string, got {type(value).__name__} {value!r:.40}"
            )
        elif len(value) > spec.max_length:
            raise _reject(spec.name, f"row {i}: longer than {spec.max_length} characters")
        out[i] = value
    return out


def _column(spec: InputSpec, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    if spec.kind == "numeric":
        return numeric_column(spec, values)
    return categorical_column(spec, values)


def _check_names(names: Sequence[str], specs: Sequence[InputSpec], what: str) -> None:
    expected = {s.name for s in specs}
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _reject(name, f"{what} appears twice")
        seen.add(name)
    unknown = sorted(seen - expected)
    if unknown:
        raise _reject(unknown[0], f"unknown {what} (unknown: {', '.join(unknown)})")
    missing = [s.name for s in specs if s.name not in seen]
    if missing:
        raise _reject(missing[0], f"missing {what} (missing: {', '.join(missing)})")


def _check_rows(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise _reject(None, "the request has no rows")
    if rows > max_rows:
        raise _reject(None, f"{rows} rows exceed the limit of {max_rows} rows per request", 413)


def decode_raw(tensor: Tensor) -> np.ndarray | list[bytes]:
    raw = tensor.raw or b""
    if tensor.datatype == "BYTES":
        items: list[bytes] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise _reject(tensor.name, "truncated BYTES element length")
            length = int.from_bytes(raw[offset : offset + 4], "little")
            offset += 4
            if offset + length > len(raw):
                raise _reject(tensor.name, "truncated BYTES element")
            items.append(raw[offset : offset + length])
            offset += length
        return items
    dtype = np.dtype(_NUMPY_OF_DATATYPE[tensor.datatype]).newbyteorder("<")
    if len(raw) % dtype.itemsize:
        raise _reject(tensor.name, f"{len(raw)} bytes is not a whole number of {tensor.datatype}")
    return np.frombuffer(raw, dtype=dtype)


def feed_from_tensors(
    tensors: Sequence[Tensor], specs: Sequence[InputSpec], max_rows: int
) -> dict[str, np.ndarray]:
    """Validate V2 input tensors and build the ONNX Runtime feed (``[N, 1]`` per input)."""
    _check_names([t.name for t in tensors], specs, "input")
    by_name = {s.name: s for s in specs}
    feed: dict[str, np.ndarray] = {}
    rows: int | None = None
    for tensor in tensors:
        spec = by_name[tensor.name]
        shape = tensor.shape
        if not shape or len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise _reject(tensor.name, f"shape {list(shape)} is not [N] or [N, 1]")
        n = int(shape[0])
        _check_rows(n, max_rows)
        if rows is None:
            rows = n
        elif n != rows:
            raise _reject(tensor.name, f"has {n} rows, other inputs have {rows}")
        if spec.kind == "numeric" and tensor.datatype not in _NUMERIC_DATATYPES:
            raise _reject(tensor.name, f"datatype {tensor.datatype} is not numeric (send FP32)")
        if spec.kind == "categorical" and tensor.datatype != "BYTES":
            raise _reject(tensor.name, f"datatype {tensor.datatype} is not BYTES (a string)")
        values = (
            decode_raw(tensor) if tensor.raw is not None else _flatten(tensor.name, tensor.data)
        )
        if len(values) != n:
            raise _reject(tensor.name, f"has {len(values)} values but shape {list(shape)}")
        feed[tensor.name] = _column(spec, values).reshape(n, 1)
    return feed


def feed_from_instances(
    instances: Any, specs: Sequence[InputSpec], max_rows: int
) -> dict[str, np.ndarray]:
    """Validate V1 ``instances`` (a list of {feature: value}) and build the ORT feed."""
    if not isinstance(instances, list):
        raise _reject("instances", "must be a list of objects, one per row")
    _check_rows(len(instances), max_rows)
    names = [s.name for s in specs]
    for i, row in enumerate(instances):
        if not isinstance(row, Mapping):
            raise _reject("instances", f"row {i} is {type(row).__name__}, not an object")
        if len(row) != len(names) or any(name not in row for name in names):
            try:
                _check_names(list(row), specs, "field")
            except InvalidInferenceRequest as exc:
                raise _reject(exc.field, f"row {i}: {exc.problem}") from None
    n = len(instances)
    return {
        spec.name: _column(spec, [row[spec.name] for row in instances]).reshape(n, 1)
        for spec in specs
    }


def tensors_from_v2_inputs(inputs: Any, raw_payload: memoryview | None = None) -> list[Tensor]:
    """Read the ``inputs`` list of a V2 JSON request (with the binary extension, if used)."""
    if not isinstance(inputs, list):
        raise _reject("inputs", "must be a list of tensors")
    tensors = []
    offset = 0
    for i, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise _reject("inputs", f"item {i} is not an object")
        name = item.get("name")
        if not isinstance(name, str):
            raise _reject("inputs", f"item {i} has no string 'name'")
        datatype = item.get("datatype")
        if not isinstance(datatype, str):
            raise _reject(name, "missing 'datatype'")
        datatype = datatype.upper()
        shape = item.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _reject(name, "'shape' must be a list of non-negative integers")
        parameters = item.get("parameters") or {}
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is not None:
            if raw_payload is None or not isinstance(size, int) or size < 0:
                raise _reject(name, "binary_data_size given but no binary payload follows")
            if offset + size > len(raw_payload):
                raise _reject(name, "binary payload shorter than binary_data_size")
            raw = bytes(raw_payload[offset : offset + size])
            offset += size
            tensors.append(Tensor(name, datatype, tuple(shape), raw=raw))
        else:
            if "data" not in item:
                raise _reject(name, "missing 'data'")
            tensors.append(Tensor(name, datatype, tuple(shape), data=item["data"]))
    if raw_payload is not None and offset != len(raw_payload):
        raise _reject(None, f"{len(raw_payload) - offset} binary bytes are not claimed by inputs")
    return tensors
