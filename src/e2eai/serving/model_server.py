"""The ``kserve.ModelServer`` every e2eai serving process runs, bound where it is told.

kserve binds its HTTP listener to 0.0.0.0 and its gRPC server to ``[::]``; here both bind the
host given (loopback by default), and the event loop is uvloop unless
``event_loop="asyncio"``. The gRPC server is kserve's own servicer with two changes:
the model-repository RPCs (load/unload) are UNIMPLEMENTED, as their REST routes are not served
either, and a request's own errors (INVALID_ARGUMENT, NOT_FOUND) are answered without writing
a traceback to the log for each one.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def loopback_model_server(host: str, **kwargs: Any) -> Any:
    """A ``kserve.ModelServer`` whose HTTP and gRPC listeners bind ``host``, not all interfaces."""
    import kserve.model_server
    from kserve import ModelServer

    class LoopbackModelServer(ModelServer):
        def start(self, models: list[Any]) -> None:
            # kserve builds its GRPCServer from this module global inside start(); the process
            # runs one ModelServer, so the swap holds for as long as it serves.
            kserve.model_server.GRPCServer = _grpc_server_class(  # type: ignore[misc]
                host, request_logs=self.enable_latency_logging
            )
            if self.event_loop != "asyncio":
                _use_uvloop()
            super().start(models)

        def setup_event_loop(self) -> None:
            # Called by start() after the REST server is built and before it listens.
            if self._rest_server is not None:
                self._rest_server.config.host = host
            super().setup_event_loop()

    return LoopbackModelServer(**kwargs)


def _use_uvloop() -> None:
    """Make ``asyncio.run`` use uvloop, as kserve's ``event_loop="auto"`` promises.

    kserve hands the loop choice to uvicorn's config, but runs ``uvicorn.Server.serve()``
    inside its own ``asyncio.run``, where uvicorn never applies it: the server ran on the
    stock asyncio loop.
    """
    import asyncio

    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # kserve's setup_event_loop() asks for the current loop before asyncio.run makes one.
    asyncio.set_event_loop(asyncio.new_event_loop())


def _grpc_server_class(host: str, *, request_logs: bool) -> type:
    """kserve's ``GRPCServer``, listening on ``host``, without the model-repository RPCs."""
    from concurrent import futures

    from grpc import StatusCode, aio
    from grpc_interceptor.exceptions import Unimplemented
    from kserve.errors import InvalidInput, ModelNotFound
    from kserve.logging import logger as kserve_log
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import (
        ExceptionToStatusInterceptor,
        LoggingInterceptor,
    )
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.grpc.servicer import InferenceServicer

    class PredictorServicer(InferenceServicer):
        async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
            raise Unimplemented("the model repository is not served")

        async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
            raise Unimplemented("the model repository is not served")

    class ClientErrorsToStatus(ExceptionToStatusInterceptor):
        """A bad request is the client's error: its status, one debug line, no traceback."""

        async def handle_exception(
            self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str
        ) -> None:
            if isinstance(ex, InvalidInput):
                log.debug("%s: invalid argument: %s", method_name, ex.reason)
                await context.abort(StatusCode.INVALID_ARGUMENT, ex.reason)
            elif isinstance(ex, ModelNotFound):
                await context.abort(StatusCode.NOT_FOUND, ex.reason)
            else:
                await super().handle_exception(ex, request_or_iterator, context, method_name)

    class LoopbackGRPCServer(GRPCServer):
        async def start(self, max_workers: int) -> None:
            # kserve's GRPCServer.start, with the listen address and the servicer changed.
            self._server = aio.server(
                futures.ThreadPoolExecutor(max_workers=max_workers),
                interceptors=(
                    (LoggingInterceptor(), ClientErrorsToStatus())
                    if request_logs
                    else (ClientErrorsToStatus(),)
                ),
                options=[
                    (
                        "grpc.max_send_message_length",
                        self._kwargs.get("grpc_max_send_message_length"),
                    ),
                    (
                        "grpc.max_receive_message_length",
                        self._kwargs.get("grpc_max_receive_message_length"),
                    ),
                ],
            )
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
                PredictorServicer(self._data_plane, self._model_repository_extension),
                self._server,
            )
            address = f"[{host}]:{self._port}" if ":" in host else f"{host}:{self._port}"
            self._server.add_insecure_port(address)
            kserve_log.info("Starting gRPC server on %s", address)
            await self._server.start()
            await self._server.wait_for_termination()

    return LoopbackGRPCServer


def quiet_request_logs() -> None:
    """No per-request log lines (uvicorn access log, kserve timing traces)."""
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
