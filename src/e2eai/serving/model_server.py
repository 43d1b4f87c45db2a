"""The ``kserve.ModelServer`` every e2eai serving process runs, bound where it is told."""

from __future__ import annotations

import logging
from typing import Any


def loopback_model_server(host: str, **kwargs: Any) -> Any:
    """A ``kserve.ModelServer`` whose HTTP listener binds ``host`` (kserve hard-codes 0.0.0.0)."""
    from kserve import ModelServer

    class LoopbackModelServer(ModelServer):
        def setup_event_loop(self) -> None:
            # Called by start() after the REST server is built and before it listens.
            if self._rest_server is not None:
                self._rest_server.config.host = host
            super().setup_event_loop()

    return LoopbackModelServer(**kwargs)


def quiet_request_logs() -> None:
    """No per-request log lines (uvicorn access log, kserve timing traces)."""
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
