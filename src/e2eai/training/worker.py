"""torchrun entry point: ``python -m e2eai.training.worker JOB.json`` on every rank."""

from __future__ import annotations

import sys
from pathlib import Path

from e2eai.training.ddp_loop import run_worker
from e2eai.training.torch_job import TorchJob


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m e2eai.training.worker JOB.json", file=sys.stderr)
        return 2
    run_worker(TorchJob.load(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
