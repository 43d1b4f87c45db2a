"""Inference-request validation derived from the schema: what the predictor accepts.

Every model input of the task (``task.features``) becomes an :class:`InputSpec` (name, V2
datatype, nullability, range); :class:`ModelInputs` holds them with their bounds as arrays, so
that the numeric inputs of a request are checked in one vectorised pass. Requests arrive as V2
tensors (JSON, binary extension or gRPC) or V1 instances; both are checked field by field and
turned into the ONNX Runtime feed (``[N, 1]`` float32 / string arrays). Anything wrong raises
:class:`~e2eai.errors.InvalidInferenceRequest` naming the field, never a bare exception that
would surface as a 500: whatever a client sends (nested lists, huge integers, objects where a
number belongs) is a 4xx.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeGuard

import numpy as np

from e2eai.errors import InvalidInferenceRequest

if TYPE_CHECKING:
    from e2eai.tasks import Task

_DEFAULT_MAX_STRING = 64
_ECHOED_NAME = 64  # names a client made up are cut to this length in error messages
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
_NUMERIC_DATATYPES = frozenset(_NUMPY_OF_DATATYPE)
_JSON_NUMBER_OR_NULL = frozenset({int, float, type(None)})


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


class Tensor(NamedTuple):
    """One V2 input tensor as received: JSON ``data`` (possibly nested) or raw bytes.

    A named tuple, not a dataclass: a request builds one per input, and this is the cheapest
    immutable record Python has.
    """

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


def _describe(value: Any) -> str:
    """A client's value for an error message: its type and a short, bounded rendering."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str | bytes):
        return f"{type(value).__name__} {value[:40]!r}"
    return f"{type(value).__name__} {repr(value)[:40]}"


def _short(name: str) -> str:
    return name if len(name) <= _ECHOED_NAME else name[:_ECHOED_NAME] + "…"


def _flatten(name: str, data: Any) -> list[Any]:
    """V2 JSON ``data`` is flat ([N]) or nested one level by shape ([N, 1]), nothing deeper."""
    if not isinstance(data, list):
        raise _reject(name, f"'data' must be a list, got {_describe(data)}")
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != 1:
                raise _reject(name, f"row {i}: nested 'data' must hold one value per row")
            flat.append(row[0])
        return flat
    return data


def _numbers(spec: InputSpec, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Values that are not all numbers of one numpy dtype, checked one by one (float64)."""
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        if value is None:
            if not spec.nullable:
                raise _reject(spec.name, f"row {i}: value is required (got null)")
            out[i] = math.nan
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise _reject(spec.name, f"row {i}: expected a number, got {_describe(value)}")
        else:
            try:
                out[i] = value
            except OverflowError:
                raise _reject(
                    spec.name, f"row {i}: integer of {len(str(value))} digits is out of range"
                ) from None
    return out


def _float64(values: Sequence[Any] | np.ndarray) -> np.ndarray | None:
    """``values`` as a flat float64 array when they are all numbers, else None."""
    if isinstance(values, np.ndarray):
        array = values
    else:
        if bool in map(type, values):  # numpy would take true as 1
            return None
        try:
            array = np.asarray(values)
        except (ValueError, TypeError, OverflowError):  # ragged or too deeply nested lists
            return None
    if array.ndim != 1 or array.dtype.kind not in "fiu":
        return None
    return array.astype(np.float64, copy=False)


def numeric_column(spec: InputSpec, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Validate one numeric column and return it as float32 (NaN = missing where allowed)."""
    array = _float64(values)
    if array is None:
        # Mixed/None/strings/lists: check each value so that the message names what is wrong.
        array = _numbers(spec, values)
    with np.errstate(over="ignore"):
        result = array.astype(np.float32)
    finite = np.isfinite(result)
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            if np.isinf(array[i]):
                raise _reject(spec.name, f"row {i}: infinite value is not allowed")
            if not np.isnan(array[i]):
                raise _reject(
                    spec.name, f"row {i}: value {float(array[i])!r} is out of the FP32 range"
                )
            if not spec.nullable:
                raise _reject(spec.name, f"row {i}: NaN/missing value is not allowed")
    if spec.minimum is not None or spec.maximum is not None:
        lo = -np.inf if spec.minimum is None else spec.minimum
        hi = np.inf if spec.maximum is None else spec.maximum
        out = (result < lo) | (result > hi)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise _reject(
                spec.name,
                f"row {i}: value {float(array[i])!r} is outside [{spec.minimum}, {spec.maximum}]",
            )
    return result


def is_unicode_text(value: str) -> bool:
    """False for strings with lone surrogates (the stdlib JSON parser lets "\\ud800" through)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
            raise _reject(spec.name, f"row {i}: expected a string, got {_describe(value)}")
        elif len(value) > spec.max_length:
            raise _reject(spec.name, f"row {i}: longer than {spec.max_length} characters")
        elif not value.isascii() and not is_unicode_text(value):
            raise _reject(spec.name, f"row {i}: not valid Unicode text (a lone surrogate)")
        out[i] = value
    return out


def _check_names(names: Sequence[str], specs: Sequence[InputSpec], what: str) -> None:
    expected = {s.name for s in specs}
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _reject(_short(name), f"{what} appears twice")
        seen.add(name)
    unknown = sorted(_short(name) for name in seen - expected)
    if unknown:
        listed = ", ".join(unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        raise _reject(unknown[0], f"unknown {what} (unknown: {listed})")
    missing = [s.name for s in specs if s.name not in seen]
    if missing:
        raise _reject(missing[0], f"missing {what} (missing: {', '.join(missing)})")


def _check_rows(rows: int, max_rows: int, field: str) -> None:
    if rows == 0:
        raise _reject(field, "the request has no rows")
    if rows > max_rows:
        raise _reject(field, f"{rows} rows exceed the limit of {max_rows} rows per request", 413)


def _shape_text(shape: Sequence[int]) -> str:
    return str(list(shape)) if len(shape) <= 4 else f"of {len(shape)} dimensions"


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
    if tensor.datatype not in _NUMPY_OF_DATATYPE:
        raise _reject(tensor.name, f"datatype {tensor.datatype:.20} is not a V2 tensor datatype")
    dtype = np.dtype(_NUMPY_OF_DATATYPE[tensor.datatype]).newbyteorder("<")
    if len(raw) % dtype.itemsize:
        raise _reject(tensor.name, f"{len(raw)} bytes is not a whole number of {tensor.datatype}")
    return np.frombuffer(raw, dtype=dtype)


class ModelInputs:
    """The model's inputs as the request path checks them: specs, and numeric bounds as arrays.

    Numeric inputs are validated together: one ``[k, N]`` float32 array and one range
    comparison for all of them. Only when that finds a problem are the columns checked one by
    one, which names the field and row.
    """

    def __init__(self, specs: Sequence[InputSpec]) -> None:
        self.specs = tuple(specs)
        self.names = tuple(s.name for s in self.specs)
        self.by_name = {s.name: s for s in self.specs}
        self.numeric = tuple(s for s in self.specs if s.kind == "numeric")
        self.numeric_index = {s.name: j for j, s in enumerate(self.numeric)}
        # Bounds as float32 columns (as numeric_column compares); no bound is the float32 limit,
        # so that infinities fail the range test along with what is out of range.
        biggest = float(np.finfo(np.float32).max)
        self._lo = np.array(
            [-biggest if s.minimum is None else s.minimum for s in self.numeric], dtype=np.float32
        ).reshape(-1, 1)
        self._hi = np.array(
            [biggest if s.maximum is None else s.maximum for s in self.numeric], dtype=np.float32
        ).reshape(-1, 1)
        self._nullable = np.array([s.nullable for s in self.numeric]).reshape(-1, 1)

    def _numeric_block(self, columns: list[Any], n: int) -> np.ndarray:
        """All numeric columns (in ``self.numeric`` order) as one validated float32 ``[k, N]``."""
        block = self._valid_block(columns, n)
        if block is not None:
            return block
        # Something is wrong: column by column, so that the first problem is named.
        checked = [numeric_column(s, v) for s, v in zip(self.numeric, columns, strict=True)]
        return np.stack(checked) if checked else np.empty((0, n), dtype=np.float32)

    def _valid_block(self, columns: list[Any], n: int) -> np.ndarray | None:
        """The float32 block when every value is valid, None when anything needs a closer look."""
        # JSON numbers and nulls only: numpy would take true as 1 and "1.5" as 1.5.
        lists = [c for c in columns if not isinstance(c, np.ndarray)]  # binary ones are typed
        if not set(map(type, chain.from_iterable(lists))) <= _JSON_NUMBER_OR_NULL:
            return None
        try:
            with np.errstate(over="ignore"):  # beyond float32: infinite, refused below
                block = np.array(columns, dtype=np.float32)  # null becomes NaN
        except (ValueError, TypeError, OverflowError):  # ragged, or an integer of 400 digits
            return None
        if block.shape != (len(self.numeric), n):
            return None
        inside = (block >= self._lo) & (block <= self._hi)  # False for NaN and infinities
        if not inside.all() and (~inside & ~(self._nullable & np.isnan(block))).any():
            return None
        return block

    def feed_from_tensors(self, tensors: Sequence[Tensor], max_rows: int) -> dict[str, np.ndarray]:
        """Validate V2 input tensors and build the ONNX Runtime feed (``[N, 1]`` per input)."""
        names = tuple(t.name for t in tensors)
        if names != self.names:
            _check_names(names, self.specs, "input")
        feed: dict[str, np.ndarray] = {}
        numeric: list[Any] = [None] * len(self.numeric)
        numeric_index = self.numeric_index
        rows = -1
        for tensor in tensors:
            name, datatype, shape, data, raw = tensor
            j = numeric_index.get(name)  # None: a categorical input
            if len(shape) != 1 and (len(shape) != 2 or shape[1] != 1):
                raise _reject(name, f"shape {_shape_text(shape)} is not [N] or [N, 1]")
            n = shape[0]
            if n != rows:
                if rows >= 0:
                    raise _reject(name, f"has {n} rows, other inputs have {rows}")
                _check_rows(n, max_rows, name)
                rows = n
            if j is not None:
                if datatype not in _NUMERIC_DATATYPES:
                    raise _reject(name, f"datatype {datatype:.20} is not numeric (send FP32)")
            elif datatype != "BYTES":
                raise _reject(name, f"datatype {datatype:.20} is not BYTES (a string)")
            if raw is not None:
                values = decode_raw(tensor)
            elif type(data) is list and (not data or type(data[0]) is not list):
                values = data  # flat, as most clients send it
            else:
                values = _flatten(name, data)
            if len(values) != n:
                raise _reject(name, f"has {len(values)} values but shape {_shape_text(shape)}")
            if j is not None:
                numeric[j] = values
            else:
                feed[name] = categorical_column(self.by_name[name], values).reshape(n, 1)
        block = self._numeric_block(numeric, rows)
        for j, spec in enumerate(self.numeric):
            feed[spec.name] = block[j].reshape(rows, 1)
        return feed

    def feed_from_instances(self, instances: Any, max_rows: int) -> dict[str, np.ndarray]:
        """Validate V1 ``instances`` (a list of {feature: value}) and build the ORT feed."""
        if not isinstance(instances, list):
            raise _reject("instances", "must be a list of objects, one per row")
        _check_rows(len(instances), max_rows, "instances")
        width = len(self.names)
        for i, row in enumerate(instances):
            if not isinstance(row, Mapping):
                raise _reject("instances", f"row {i} is {_describe(row)}, not an object")
            if len(row) != width or any(name not in row for name in self.names):
                try:
                    _check_names(list(row), self.specs, "field")
                except InvalidInferenceRequest as exc:
                    raise _reject(exc.field, f"row {i}: {exc.problem}") from None
        n = len(instances)
        feed: dict[str, np.ndarray] = {}
        numeric: list[Any] = [None] * len(self.numeric)
        for spec in self.specs:
            values = [row[spec.name] for row in instances]
            if spec.kind == "numeric":
                numeric[self.numeric_index[spec.name]] = values
            else:
                feed[spec.name] = categorical_column(spec, values).reshape(n, 1)
        block = self._numeric_block(numeric, n)
        for j, spec in enumerate(self.numeric):
            feed[spec.name] = block[j].reshape(n, 1)
        return feed


def feed_from_tensors(
    tensors: Sequence[Tensor], specs: Sequence[InputSpec], max_rows: int
) -> dict[str, np.ndarray]:
    """Validate V2 input tensors against ``specs`` and build the ORT feed (``[N, 1]`` each)."""
    return ModelInputs(specs).feed_from_tensors(tensors, max_rows)


def feed_from_instances(
    instances: Any, specs: Sequence[InputSpec], max_rows: int
) -> dict[str, np.ndarray]:
    """Validate V1 ``instances`` against ``specs`` and build the ORT feed."""
    return ModelInputs(specs).feed_from_instances(instances, max_rows)


def _non_negative_int(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_shape(shape: Any) -> TypeGuard[list[int]]:
    return type(shape) is list and all(type(d) is int and d >= 0 for d in shape)


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
            raise _reject(_short(name), "missing 'datatype'")
        datatype = datatype.upper()
        shape = item.get("shape")
        if not _is_shape(shape):
            raise _reject(_short(name), "'shape' must be a list of non-negative integers")
        parameters = item.get("parameters")
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is not None:
            if raw_payload is None or not _non_negative_int(size):
                raise _reject(_short(name), "binary_data_size given but no binary payload follows")
            if offset + size > len(raw_payload):
                raise _reject(_short(name), "binary payload shorter than binary_data_size")
            raw = bytes(raw_payload[offset : offset + size])
            offset += size
            tensors.append(Tensor(name, datatype, tuple(shape), None, raw))
        else:
            if "data" not in item:
                raise _reject(_short(name), "missing 'data'")
            tensors.append(Tensor(name, datatype, tuple(shape), item["data"]))
    if raw_payload is not None and offset != len(raw_payload):
        raise _reject(None, f"{len(raw_payload) - offset} binary bytes are not claimed by inputs")
    return tensors
