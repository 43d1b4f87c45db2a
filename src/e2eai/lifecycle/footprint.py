"""How much memory a run took: its own process, its children, and the whole tree at once.

A deployment on one machine is several processes (the replay, the app, the router,
predictors, pipeline steps and training workers): what the machine must hold is their sum
at the worst moment, which :class:`TreeMemory` samples; ``getrusage`` adds the peak of this
process and of the largest child that has finished.
"""

from __future__ import annotations

import resource
import threading
from types import TracebackType

import psutil


def peak_rss_by_process() -> dict[str, float]:
    """Peak resident memory in MB of this process, and of the largest of its finished
    children (pipeline steps, training workers, servers that were stopped)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"this_process": round(own / 1024, 1), "largest_child": round(children / 1024, 1)}


def tree_rss_mb() -> float:
    """Resident memory of this process and all its descendants now, in MB."""
    me = psutil.Process()
    total = 0
    for process in [me, *me.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # ended between the listing and the reading
            continue
    return total / 2**20


class TreeMemory:
    """Samples :func:`tree_rss_mb` every ``interval`` seconds while the block runs."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tree-memory", daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, tree_rss_mb())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        """The tree's sampled peak and :func:`peak_rss_by_process`, in MB."""
        return {"process_tree": round(self.peak_mb, 1), **peak_rss_by_process()}
