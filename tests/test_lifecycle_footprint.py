"""The run's memory figure counts every process of the run at once, children included."""

from __future__ import annotations

import subprocess
import sys
import time

from e2eai.lifecycle.footprint import TreeMemory, tree_rss_mb

HOLD = "import time; block = bytearray(300 * 2**20); print('ready', flush=True); time.sleep(30)"


def test_the_sampled_peak_includes_a_live_child() -> None:
    before = tree_rss_mb()
    with TreeMemory(interval=0.05) as memory:
        child = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            time.sleep(0.3)
        finally:
            child.kill()
            child.wait()
    summary = memory.summary()
    # bytearray pages are touched (zeroed), so the child holds its 300 MB resident
    assert summary["process_tree"] >= before + 300
    assert summary["largest_child"] >= 300  # getrusage saw it too, once it was waited for
    assert tree_rss_mb() < before + 150  # the child is gone
