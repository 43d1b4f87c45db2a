"""An in-memory Kubernetes API server (kmock's KubernetesEmulator) for controller tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def emulated_custom_objects_api(resources: dict[str, str]) -> Iterator[Any]:
    """A CustomObjectsApi talking to kmock's emulator on 127.0.0.1.

    ``resources`` maps ``group/version/plural`` to the kind the emulator should serve.
    """
    import kmock
    from kubernetes import client

    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            for path, kind in resources.items():
                emulator.resources[path] = kmock.ResourceInfo(kind=kind, namespaced=True)
            box["url"] = str(server.url).rstrip("/")
            box["stop"] = asyncio.Event()
            ready.set()
            await box["stop"].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(15), "kmock emulator did not start"
        config = client.Configuration()
        config.host = box["url"]
        with client.ApiClient(config) as api_client:
            yield client.CustomObjectsApi(api_client)
    finally:
        if "stop" in box:
            loop.call_soon_threadsafe(box["stop"].set)
        thread.join(timeout=10)
