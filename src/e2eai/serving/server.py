"""The predictor process: ``kserve.ModelServer`` around :class:`OnnxPredictor`.

Run as ``python -m e2eai.serving.server --onnx model.onnx --http-port 8085 --grpc-port 8086``
(the local serving manager does exactly that). :class:`FastInferencePath`, outermost in
kserve's app, answers this model's V2 ``infer`` and V1 ``predict`` routes itself: it reads the
body up to the payload limit, parses with orjson (no pydantic model per request), validates
against the schema, skips the per-request timing/latency logs, and supports the V2 binary
tensor extension. The request path, not the model, is what costs here, so that is where the
work went. The read-only routes it allows (health, metadata, metrics) go to kserve; nothing
else does, so kserve's model-repository routes (load/unload) are not reachable. kserve's gRPC
server serves the same model (bound as the HTTP listener is, see
:func:`~e2eai.serving.model_server.loopback_model_server`).
"""

from __future__ import annotations

import argparse
import codecs
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from uuid import uuid4

import numpy as np
import orjson

from e2eai.errors import InvalidInferenceRequest
from e2eai.export.explanation import CONTRIBUTIONS
from e2eai.serving.model_server import loopback_model_server, quiet_request_logs
from e2eai.serving.predictor import OUTPUT_NAME
from e2eai.serving.validation import is_unicode_text, tensors_from_v2_inputs

log = logging.getLogger(__name__)

_JSON = b"application/json"
_OCTET = b"application/octet-stream"
_HEADER_LENGTH = b"inference-header-content-length"
_ECHOED_PATH = 120  # characters of an unknown path repeated in the 404 message
_ALLOW_GET = [(b"allow", b"GET")]
_ALLOW_POST = [(b"allow", b"POST")]
_NO_VERSIONS = "model versions are not supported: use /v2/models/<name>/…"

Headers = dict[bytes, bytes]
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


def _json_constant(token: str) -> float:
    return math.nan if token == "NaN" else (math.inf if token == "Infinity" else -math.inf)


def parse_json_body(body: bytes) -> Any:
    """The request body as JSON, or :class:`InvalidInferenceRequest` saying what is wrong.

    orjson parses the valid bodies. What it refuses is parsed again by the stdlib, which
    accepts NaN/Infinity and integers beyond float64, so that the error can name the field;
    that parser auto-detects UTF-16/32 and skips a byte-order mark, so the body is first
    decoded strictly as UTF-8 (V2 and V1 bodies are UTF-8 JSON, nothing else).
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problem = str(exc)
    if body.startswith(codecs.BOM_UTF8) or b"\x00" in body:
        raise InvalidInferenceRequest(None, "body must be UTF-8 JSON (no byte-order mark)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInferenceRequest(None, "body must be UTF-8 JSON") from None
    try:
        return json.loads(text, parse_constant=_json_constant)
    except RecursionError:
        raise InvalidInferenceRequest(None, "body is nested too deeply") from None
    except ValueError:
        raise InvalidInferenceRequest(None, f"body is not valid JSON: {problem}") from None


class FastInferencePath:
    """ASGI layer in front of kserve's app: this predictor's routes, and only those.

    - ``POST /v2/models/<name>/infer`` and ``POST /v1/models/<name>:predict`` are served here;
      their bodies are read up to ``max_payload_bytes`` (413 beyond, with or without a
      Content-Length) before anything parses them.
    - ``GET`` on ``kserve_routes`` (health, metadata, metrics, docs) passes to kserve.
    - Model versions, which kserve does not implement, are 501; everything else is 404.

    Every answer given here is JSON ``{"error": …, "field": …}`` unless it is a prediction;
    a client's request never produces a 5xx, and a bug produces a 500 with a request id (the
    traceback goes to the log, once).
    """

    def __init__(
        self, app: Any, predictor: Any, max_payload_bytes: int, kserve_routes: frozenset[str]
    ) -> None:
        self.app = app
        self.predictor = predictor
        self.max_payload_bytes = max_payload_bytes
        self.kserve_routes = kserve_routes
        name = predictor.name
        self.served: dict[str, Callable[[bytes, Headers], Answer]] = {
            f"/v2/models/{name}/infer": self.infer,
            f"/v1/models/{name}:predict": self.predict_v1,
            f"/v1/models/{name}:explain": self.explain_v1,
        }
        self.model_prefixes = (f"/v2/models/{name}/", f"/v1/models/{name}:")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan (websockets: kserve has no such route)
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        handler = self.served.get(path)
        if handler is None:
            if path in self.kserve_routes:
                if method != "GET":
                    await _respond(
                        send, 405, _error_body(None, f"{method} is not allowed"), _ALLOW_GET
                    )
                elif _asks_for_a_version(scope.get("query_string", b"")):
                    await _respond(send, 501, _error_body("model_version", _NO_VERSIONS))
                else:
                    await self.app(scope, receive, send)
                return
            status, message = self._unserved(path, method)
            await _respond(send, status, _error_body(None, message))
            return
        if method != "POST":
            await _respond(send, 405, _error_body(None, f"{method} is not allowed"), _ALLOW_POST)
            return
        headers = dict(scope["headers"])
        encoding = headers.get(b"content-encoding")
        if encoding is not None and encoding.lower() != b"identity":
            message = f"Content-Encoding {encoding.decode('latin-1')[:20]} is not supported"
            await _respond(send, 415, _error_body(None, message + ": send the body as is"))
            return
        body = await self._read_body(receive, headers.get(b"content-length"))
        if body is None:
            message = f"payload exceeds the limit of {self.max_payload_bytes} bytes"
            await _respond(send, 413, _error_body(None, message))
            return
        try:
            status, payload, extra = handler(body, headers)
        except InvalidInferenceRequest as exc:
            status, payload, extra = exc.status, _error_body(exc.field, str(exc)), []
        except Exception:  # a bug, not the client's fault: say so, keep serving
            request_id = uuid4().hex
            log.exception("internal error answering %s (request id %s)", path, request_id)
            payload = orjson.dumps({"error": "internal error", "request_id": request_id})
            status, extra = 500, []
        await _respond(send, status, payload, extra)

    def _unserved(self, path: str, method: str) -> tuple[int, str]:
        if path.startswith("/v2/models/") and "/versions/" in path:
            return 501, _NO_VERSIONS
        if path.startswith(("/v2/models/", "/v1/models/")) and not path.startswith(
            self.model_prefixes
        ):
            return 404, f"this predictor serves model {self.predictor.name!r} only"
        return 404, f"{method:.10} {path[:_ECHOED_PATH]} is not served by the predictor"

    async def _read_body(self, receive: Any, length: bytes | None) -> bytes | None:
        """The body, or None once it is longer than the limit (it is not read further)."""
        limit = self.max_payload_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            return None
        chunks = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _v1_feed(self, body: bytes) -> dict[str, Any]:
        """The model inputs of a V1 body ``{"instances": [{feature: value}, …]}``."""
        request = parse_json_body(body)
        if not isinstance(request, dict) or "instances" not in request:
            raise InvalidInferenceRequest("instances", "V1 body must be {'instances': [...]}")
        return self.predictor.feed_from_instances(request["instances"])

    def predict_v1(self, body: bytes, headers: Headers) -> Answer:
        """One V1 prediction: instances → predictions."""
        predictor = self.predictor
        probability = predictor.run(self._v1_feed(body))
        return 200, orjson.dumps(predictor.v1_response(probability)), []

    def explain_v1(self, body: bytes, headers: Headers) -> Answer:
        """V1 ``explain``: the predictions and, per row, each input's share of the logit."""
        return 200, orjson.dumps(self.predictor.v1_explanation(self._v1_feed(body))), []

    def infer(self, body: bytes, headers: Headers) -> Answer:
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
        request = parse_json_body(body)
        if not isinstance(request, dict):
            raise InvalidInferenceRequest(None, "body must be a JSON object")
        if "inputs" not in request:
            raise InvalidInferenceRequest("inputs", "missing (the V2 request has no 'inputs')")
        request_id = request.get("id")
        if request_id is None:
            request_id = headers.get(b"x-request-id", b"").decode("latin-1")
        elif not isinstance(request_id, str):
            raise InvalidInferenceRequest("id", "must be a string")
        elif not request_id.isascii() and not is_unicode_text(request_id):
            raise InvalidInferenceRequest("id", "must be valid Unicode text")
        tensors = tensors_from_v2_inputs(request["inputs"], raw)
        predictor = self.predictor
        wanted = requested_outputs(request, predictor.explanation is not None)
        contributions = None
        if CONTRIBUTIONS in wanted:
            probability, contributions = predictor.run_explained(
                predictor.feed_from_tensors(tensors)
            )
        else:
            probability = predictor.run(predictor.feed_from_tensors(tensors))
        response: dict[str, Any] = {
            "model_name": predictor.name,
            "model_version": predictor.model_version,
            "id": request_id,
            "outputs": [],
        }
        tensors_out = [("probability", probability)]
        if OUTPUT_NAME not in wanted:
            tensors_out = []
        if contributions is not None:
            tensors_out.append((CONTRIBUTIONS, contributions))
        if _wants_binary_output(request):
            blobs = []
            for name, values in tensors_out:
                data = np.ascontiguousarray(values, dtype="<f4").tobytes()
                blobs.append(data)
                response["outputs"].append(
                    {
                        "name": name,
                        "datatype": "FP32",
                        "shape": list(values.shape),
                        "parameters": {"binary_data_size": len(data)},
                    }
                )
            header = orjson.dumps(response)
            return (
                200,
                header + b"".join(blobs),
                [
                    (b"content-type", _OCTET),
                    (_HEADER_LENGTH, str(len(header)).encode()),
                ],
            )
        for name, values in tensors_out:
            response["outputs"].append(
                {
                    "name": name,
                    "datatype": "FP32",
                    "shape": list(values.shape),
                    "data": values.reshape(-1),
                }
            )
        return 200, orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY), []


def _asks_for_a_version(query_string: bytes) -> bool:
    """kserve's metadata and ready routes take ``?model_version=`` only to raise (501)."""
    return bool(query_string) and "model_version" in parse_qs(
        query_string.decode("latin-1"), keep_blank_values=True
    )


def requested_outputs(request: dict[str, Any], explains: bool) -> set[str]:
    """The output names a V2 request asks for (all but ``contributions`` when it names none).

    400 naming ``outputs`` for a name the graph does not have.
    """
    outputs = request.get("outputs")
    if outputs is None:
        return {OUTPUT_NAME}
    if not isinstance(outputs, list):
        raise InvalidInferenceRequest("outputs", "must be a list of {name}")
    have = {OUTPUT_NAME, CONTRIBUTIONS} if explains else {OUTPUT_NAME}
    names = set()
    for i, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str):
            raise InvalidInferenceRequest(f"outputs[{i}].name", "must be a string")
        if name not in have:
            raise InvalidInferenceRequest(
                f"outputs[{i}].name", f"the model has no output {name[:60]!r} ({sorted(have)})"
            )
        names.add(name)
    return names or {OUTPUT_NAME}


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
    try:
        return orjson.dumps({"error": message, "field": field})
    except orjson.JSONEncodeError:  # a name the client made up, with a lone surrogate
        return json.dumps({"error": message, "field": field}).encode()


async def _respond(
    send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if not extra or all(k != b"content-type" for k, _ in extra):
        headers.append((b"content-type", _JSON))
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def kserve_read_only_routes(app: Any, model_name: str) -> frozenset[str]:
    """The GET routes of kserve's ``app`` the predictor exposes (docs only if kserve has them)."""
    routes = {
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{model_name}",
        f"/v2/models/{model_name}/ready",
        "/v1/models",
        f"/v1/models/{model_name}",
        "/metrics",
    }
    if app.openapi_url:
        routes.add(app.openapi_url)
    if app.docs_url:
        routes.add(app.docs_url)
        if app.swagger_ui_oauth2_redirect_url:
            routes.add(app.swagger_ui_oauth2_redirect_url)
    return frozenset(routes)


def install_fast_path(predictor: Any, max_payload_bytes: int) -> None:
    """Put :class:`FastInferencePath` outermost in kserve's app.

    kserve adds its own middleware when the server starts; wrapping ``build_middleware_stack``
    keeps this layer outermost whatever kserve adds, so the hot routes skip all of it.
    """
    from kserve.model_server import app

    routes = kserve_read_only_routes(app, predictor.name)
    build = app.build_middleware_stack

    def build_with_fast_path() -> Any:
        return FastInferencePath(build(), predictor, max_payload_bytes, routes)

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
        event_loop="asyncio" if args.stock else "auto",  # stock: what kserve really runs
        workers=1,
    )
    if not args.stock:
        install_fast_path(predictor, settings.serving.max_payload_bytes)
        quiet_request_logs()
    server.start([predictor])


if __name__ == "__main__":
    main()
