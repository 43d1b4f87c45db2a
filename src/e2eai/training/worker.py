"""torchrun entry point: ``python -m e2eai.training.worker JOB.json`` on every rank."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from e2eai.training.ddp_loop import run_worker
from e2eai.training.torch_job import TorchJob


def log_worker_progress() -> None:
    """Show e2eai's INFO lines on stderr; other libraries stay at WARNING.

    They land in torchrun.log locally and in the pod's log on a cluster: which checkpoint
    each rank resumed from and the model digest it ended with.
    """
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("e2eai").setLevel(logging.INFO)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m e2eai.training.worker JOB.json", file=sys.stderr)
        return 2
    log_worker_progress()
    run_worker(TorchJob.load(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
