"""The Feast transformer: flight requests → online features → model input (KServe preprocess).

Two ways to run it, measured side by side in ``bench/bench_serving.py``:

- in-process: :class:`FlightEnricher` plugged into the predictor (``--enrich``); no extra
  network hop, one process to scale;
- separate: ``python -m e2eai.serving.transformer --predictor-host …`` runs
  :class:`FlightTransformer`, a ``kserve.Model`` whose ``preprocess`` builds the V2 request
  for the predictor (the InferenceService's transformer component on the cluster).

Either way the model input comes from ``e2eai.features.model_input.model_input_columns`` —
the function that builds the training rows — so serving cannot drift from training.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from e2eai import schema
from e2eai.errors import InvalidInferenceRequest
from e2eai.serving.validation import (
    InputSpec,
    Tensor,
    categorical_column,
    numeric_column,
    tensors_from_v2_inputs,
)

if TYPE_CHECKING:
    import pandas as pd

    from e2eai.config import Settings

_FIELDS = {f.name: f for f in schema.REQUEST_FIELDS}


def _parse_departure(i: int, value: Any) -> datetime:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise InvalidInferenceRequest(
            "scheduled_departure",
            f"row {i}: expected an ISO 8601 string, got {type(value).__name__}",
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInferenceRequest(
            "scheduled_departure", f"row {i}: {value!r:.40} is not an ISO 8601 timestamp"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _request_column(name: str, values: Sequence[Any]) -> np.ndarray:
    field = _FIELDS[name]
    if field.type == "datetime":
        # Naive UTC datetime64: the instant, as e2eai.features.model_input reads it.
        utc = [_parse_departure(i, v).replace(tzinfo=None) for i, v in enumerate(values)]
        return np.array(utc, dtype="datetime64[ns]")
    if field.type == "str":
        spec = InputSpec(name, "categorical", False, max_length=field.max_length or 64)
        return categorical_column(spec, values)
    spec = InputSpec(name, "numeric", False, field.minimum, field.maximum)
    column = numeric_column(spec, values)
    if field.type == "int":
        if not np.all(np.equal(np.mod(column, 1), 0)):
            raise InvalidInferenceRequest(name, "expected whole numbers")
        return column.astype(np.int64)
    return column


def flight_request_columns(
    columns: dict[str, Sequence[Any]], max_rows: int
) -> dict[str, np.ndarray]:
    """Validate flight-request columns (schema.REQUEST_FIELDS) into typed numpy arrays.

    ``scheduled_departure`` becomes ``datetime64[ns]`` in UTC; bad input raises
    :class:`~e2eai.errors.InvalidInferenceRequest` naming the field.
    """
    unknown = sorted(set(columns) - set(_FIELDS))
    if unknown:
        raise InvalidInferenceRequest(unknown[0], f"unknown field (unknown: {', '.join(unknown)})")
    missing = [name for name in _FIELDS if name not in columns]
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
    return {name: _request_column(name, columns[name]) for name in _FIELDS}


def flight_requests_frame(columns: dict[str, Sequence[Any]], max_rows: int) -> pd.DataFrame:
    """Validate flight-request columns (schema.REQUEST_FIELDS) into a DataFrame."""
    import pandas as pd

    frame = pd.DataFrame(flight_request_columns(columns, max_rows))
    frame["scheduled_departure"] = frame["scheduled_departure"].dt.tz_localize("UTC")
    return frame


def _columns(request: Any) -> dict[str, Sequence[Any]]:
    """Columns from V1 instances (list of dicts) or V2 tensors."""
    if isinstance(request, list) and request and isinstance(request[0], Tensor):
        out: dict[str, Sequence[Any]] = {}
        for tensor in request:
            if tensor.raw is not None:
                from e2eai.serving.validation import _decode_raw

                out[tensor.name] = list(_decode_raw(tensor))
            else:
                data = tensor.data
                out[tensor.name] = (
                    [v for row in data for v in row]
                    if (data and isinstance(data[0], list))
                    else data
                )
        return out
    if not isinstance(request, list) or not all(isinstance(r, dict) for r in request):
        raise InvalidInferenceRequest("instances", "must be a list of flight objects")
    names = set().union(*(r.keys() for r in request)) if request else set()
    for i, row in enumerate(request):
        absent = [n for n in names if n not in row]
        if absent:
            raise InvalidInferenceRequest(absent[0], f"row {i}: missing field")
    return {name: [row[name] for row in request] for name in names}


class FlightEnricher:
    """Flight requests → Feast online features → the model's ORT feed (same code as training)."""

    def __init__(self, settings: Settings, *, warm: bool = True) -> None:
        """``warm``: open the Feast store now (seconds), so the first request does not."""
        self.settings = settings
        self.max_rows = settings.serving.max_batch_rows
        if warm:
            from e2eai.features.store import warm_online_store

            warm_online_store(settings)

    def model_input(self, request: Any) -> dict[str, np.ndarray]:
        """The model-input columns for a request (V1 instances or V2 tensors)."""
        from e2eai.features.store import online_model_columns

        requests = flight_request_columns(_columns(request), self.max_rows)
        return online_model_columns(self.settings, requests)

    def __call__(self, request: Any) -> dict[str, np.ndarray]:
        feed: dict[str, np.ndarray] = {}
        for name, values in self.model_input(request).items():
            if values.dtype == object:
                # The ONNX graph takes the empty string as the unknown category.
                values = np.array(["" if v is None else v for v in values], dtype=object)
            feed[name] = values.reshape(-1, 1)
        return feed


def _transformer_class() -> type:
    from kserve import InferInput, InferRequest, Model

    from e2eai.serving.predictor import as_kserve_error

    class FlightTransformer(Model):
        """KServe transformer: ``preprocess`` enriches flights; kserve forwards to the predictor."""

        def __init__(self, name: str, enricher: FlightEnricher) -> None:
            super().__init__(name)
            self.enricher = enricher
            self.ready = True

        async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            try:
                if isinstance(payload, InferRequest):
                    request: Any = [
                        Tensor(
                            i.name,
                            i.datatype,
                            tuple(i.shape),
                            data=None if i._raw_data is not None else i.data,
                            raw=i._raw_data,
                        )
                        for i in payload.inputs
                    ]
                    request_id = payload.id
                elif isinstance(payload, dict) and "inputs" in payload:
                    request = tensors_from_v2_inputs(payload["inputs"])
                    request_id = payload.get("id")
                elif isinstance(payload, dict) and "instances" in payload:
                    request, request_id = payload["instances"], None
                else:
                    raise InvalidInferenceRequest(None, "expected V1 instances or V2 inputs")
                feed = self.enricher(request)
            except InvalidInferenceRequest as exc:
                raise as_kserve_error(exc) from None
            inputs = []
            for name, array in feed.items():
                datatype = "BYTES" if array.dtype == object else "FP32"
                tensor = InferInput(name, list(array.shape), datatype)
                tensor.set_data_from_numpy(array, binary_data=False)
                inputs.append(tensor)
            return InferRequest(self.name, inputs, request_id=request_id)

    return FlightTransformer


def main(argv: list[str] | None = None) -> None:
    """Run the transformer as its own ModelServer in front of a predictor."""
    parser = argparse.ArgumentParser(prog="python -m e2eai.serving.transformer")
    # KServe's controller appends --model_name and --predictor_host to transformer args.
    parser.add_argument(
        "--predictor-host",
        "--predictor_host",
        dest="predictor_host",
        required=True,
        help="host:port of the predictor",
    )
    parser.add_argument("--served-name", "--model_name", dest="served_name", default=None)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    from kserve import PredictorConfig

    from e2eai.config import get_settings
    from e2eai.serving.server import _loopback_model_server, quiet_request_logs

    settings = get_settings()
    transformer = _transformer_class()(
        args.served_name or settings.serving.model_name, FlightEnricher(settings)
    )
    server = _loopback_model_server(
        args.host,
        http_port=args.http_port,
        enable_grpc=False,
        enable_latency_logging=False,
        predictor_config=PredictorConfig(
            predictor_host=args.predictor_host,
            predictor_protocol="v2",
        ),
    )
    quiet_request_logs()
    server.start([transformer])


if __name__ == "__main__":
    main()
