"""The predictor process: ``kserve.ModelServer`` around :class:`OnnxPredictor`.

Run as ``python -m e2eai.serving.server --onnx model.onnx --http-port 8085 --grpc-port 8086``
(the local serving manager does exactly that). kserve serves V1, V2, gRPC, health, metadata
and metrics; :class:`FastInferencePath` answers this model's V2 ``infer`` route itself: it
parses with orjson (no pydantic model per request), validates against the schema, skips the
per-request timing/latency logs, and supports the V2 binary tensor extension. The request
path, not the model (~10 µs in ORT), is what costs here, so that is where the work went.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import orjson

from e2eai.errors import InvalidInferenceRequest
from e2eai.serving.model_server import loopback_model_server, quiet_request_logs
from e2eai.serving.validation import tensors_from_v2_inputs

log = logging.getLogger(__name__)

_JSON = b"application/json"
_OCTET = b"application/octet-stream"
_HEADER_LENGTH = b"inference-header-content-length"


def _nan_token_json(body: bytes) -> Any:
    """Fallback parser: stdlib json accepts NaN/Infinity, so the error can name the field."""
    return json.loads(
        body,
        parse_constant=lambda token: (
            math.nan if token == "NaN" else (math.inf if token == "Infinity" else -math.inf)
        ),
    )


class FastInferencePath:
    """ASGI layer in front of kserve's app: serves ``POST /v2/models/<name>/infer`` directly.

    Everything else (health, metadata, V1, gRPC, metrics) passes through to kserve. Oversized
    bodies are refused with 413 on every route before they are read.
    """

    def __init__(self, app: Any, predictor: Any, max_payload_bytes: int) -> None:
        self.app = app
        self.predictor = predictor
        self.max_payload_bytes = max_payload_bytes
        self.infer_path = f"/v2/models/{predictor.name}/infer"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_payload_bytes:
            await _respond(
                send,
                413,
                _error_body(
                    None,
                    f"payload of {int(length)} bytes exceeds the limit of "
                    f"{self.max_payload_bytes} bytes",
                ),
            )
            return
        if scope["path"] != self.infer_path:
            await self.app(scope, receive, send)
            return
        body = await self._read_body(receive)
        if body is None:
            await _respond(
                send,
                413,
                _error_body(None, f"payload exceeds the limit of {self.max_payload_bytes} bytes"),
            )
            return
        try:
            status, payload, extra = self.infer(body, headers)
        except InvalidInferenceRequest as exc:
            status, payload, extra = exc.status, _error_body(exc.field, str(exc)), []
        except Exception as exc:  # a bug, not the client's fault: say so, keep serving
            log.exception("inference failed")
            status, payload, extra = 500, orjson.dumps({"error": f"internal error: {exc}"}), []
        await _respond(send, status, payload, extra)

    async def _read_body(self, receive: Any) -> bytes | None:
        chunks = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_payload_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def infer(
        self, body: bytes, headers: dict[bytes, bytes]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """One V2 inference: (status, body, extra headers)."""
        header_length = headers.get(_HEADER_LENGTH)
        raw: memoryview | None = None
        if header_length is not None:
            if not header_length.isdigit() or int(header_length) > len(body):
                raise InvalidInferenceRequest(
                    "Inference-Header-Content-Length", "not a valid length of the JSON header"
                )
            cut = int(header_length)
            raw = memoryview(body)[cut:]
            body = body[:cut]
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            try:
                request = _nan_token_json(body)
            except ValueError:
                raise InvalidInferenceRequest(None, f"body is not valid JSON: {exc}") from None
        if not isinstance(request, dict):
            raise InvalidInferenceRequest(None, "body must be a JSON object")
        if "inputs" not in request:
            raise InvalidInferenceRequest("inputs", "missing (the V2 request has no 'inputs')")
        tensors = tensors_from_v2_inputs(request["inputs"], raw)
        predictor = self.predictor
        probability = predictor.run(predictor.feed_from_tensors(tensors))
        request_id = request.get("id")
        if request_id is None:
            request_id = headers.get(b"x-request-id", b"").decode("latin-1")
        response: dict[str, Any] = {
            "model_name": predictor.name,
            "model_version": predictor.model_version,
            "id": request_id,
            "outputs": [],
        }
        if _wants_binary_output(request):
            data = probability.astype("<f4").tobytes()
            response["outputs"].append(
                {
                    "name": "probability",
                    "datatype": "FP32",
                    "shape": [len(probability)],
                    "parameters": {"binary_data_size": len(data)},
                }
            )
            header = orjson.dumps(response)
            return (
                200,
                header + data,
                [
                    (b"content-type", _OCTET),
                    (_HEADER_LENGTH, str(len(header)).encode()),
                ],
            )
        response["outputs"].append(
            {
                "name": "probability",
                "datatype": "FP32",
                "shape": [len(probability)],
                "data": probability,
            }
        )
        return 200, orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY), []


def _wants_binary_output(request: dict[str, Any]) -> bool:
    parameters = request.get("parameters")
    if isinstance(parameters, dict) and parameters.get("binary_data_output"):
        return True
    outputs = request.get("outputs")
    if isinstance(outputs, list):
        for output in outputs:
            params = output.get("parameters") if isinstance(output, dict) else None
            if isinstance(params, dict) and params.get("binary_data"):
                return True
    return False


def _error_body(field: str | None, message: str) -> bytes:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return orjson.dumps(body)


async def _respond(
    send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if not extra or all(k != b"content-type" for k, _ in extra):
        headers.append((b"content-type", _JSON))
    headers.extend(extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_fast_path(predictor: Any, max_payload_bytes: int) -> None:
    """Put :class:`FastInferencePath` outermost in kserve's app and map 413s for kserve routes.

    kserve adds its own middleware when the server starts; wrapping ``build_middleware_stack``
    keeps this layer outermost whatever kserve adds, so the hot route skips all of it.
    """
    from fastapi.responses import JSONResponse
    from kserve.model_server import app

    from e2eai.serving.predictor import RejectedRequest

    async def rejected_handler(_: Any, exc: RejectedRequest) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"error": str(exc)})

    app.add_exception_handler(RejectedRequest, rejected_handler)
    build = app.build_middleware_stack

    def build_with_fast_path() -> Any:
        return FastInferencePath(build(), predictor, max_payload_bytes)

    app.build_middleware_stack = build_with_fast_path  # type: ignore[method-assign]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m e2eai.serving.server")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--onnx", type=Path, help="ONNX file to serve.")
    source.add_argument("--registry-version", type=int, help="Registry version to fetch.")
    parser.add_argument("--served-name", default=None, help="Model name in the URL.")
    parser.add_argument("--model-version", default="", help="Version reported in responses.")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address.")
    parser.add_argument("--grpc-port", type=int, default=0, help="0 disables gRPC.")
    parser.add_argument(
        "--enrich",
        action="store_true",
        help="Accept the task's requests and fetch Feast features in-process (preprocess).",
    )
    parser.add_argument(
        "--stock",
        action="store_true",
        help="Plain kserve defaults (no fast path, default logging): the benchmark baseline.",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Start the predictor's ModelServer (blocks until SIGTERM)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from e2eai.config import get_settings
    from e2eai.serving.predictor import OnnxPredictor, resolve_model_path
    from e2eai.tasks import load_task

    settings = get_settings()
    task = load_task(settings)

    path = resolve_model_path(
        settings,
        version=args.registry_version,
        path=args.onnx,
        cache_dir=settings.home / "serving" / "models",
    )
    enricher = None
    if args.enrich:
        from e2eai.serving.enricher import Enricher

        enricher = Enricher(settings, task)
    predictor = OnnxPredictor(
        args.served_name or settings.serving.model_name,
        path,
        task,
        model_version=args.model_version
        or (str(args.registry_version) if args.registry_version else ""),
        max_batch_rows=settings.serving.max_batch_rows,
        enricher=enricher,
    )
    predictor.load()
    import kserve.model_server

    # gRPC refuses oversized messages itself (RESOURCE_EXHAUSTED) at the same limit as REST.
    kserve.model_server.args.grpc_max_receive_message_length = settings.serving.max_payload_bytes
    server = loopback_model_server(
        args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port or 8081,
        enable_grpc=bool(args.grpc_port),
        enable_latency_logging=args.stock,
        workers=1,
    )
    if not args.stock:
        install_fast_path(predictor, settings.serving.max_payload_bytes)
        quiet_request_logs()
    server.start([predictor])


if __name__ == "__main__":
    main()
