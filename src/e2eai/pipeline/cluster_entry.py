"""Container entry of cluster training jobs, on every node: ``torchrun … -m`` this module ``KEY``.

Each process torchrun starts joins the job's world (:mod:`e2eai.training.torch_world`). Rank 0
reads the request the train step stored (settings, training frame key, warm start), runs
``run_training`` and uploads the result directory next to the request; the other ranks train
its torch fits with it, with inputs and checkpoints under the request's shared prefix in the
store, so a restarted pod resumes where the job stopped. A TrainJob and a PyTorchJob start it
the same way (:mod:`e2eai.pipeline.cluster_training` says how the rendezvous reaches torchrun).

Started without torchrun (no ``WORLD_SIZE`` in the environment), it runs the request in one
process, torch fits under their own local ``torchrun --standalone`` as in a local run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e2eai.pipeline.cluster_training import RESULT_DIR

if TYPE_CHECKING:
    from e2eai.config import Settings


def _read_request(request_key: str) -> tuple[dict[str, Any], Settings]:
    """The stored request and the run's settings it carries."""
    from e2eai.config import get_settings
    from e2eai.pipeline.run_settings import settings_from_json
    from e2eai.storage import open_store

    # The job's environment carries the run's settings (E2EAI_*), so it names the same store.
    request = json.loads(open_store(get_settings().artifacts).get_bytes(request_key))
    return request, settings_from_json(request["settings_json"])


def _train_and_upload(request: dict[str, Any], settings: Settings) -> str:
    """``run_training`` on the request's frame; the result directory goes to the store."""
    import pandas as pd

    from e2eai.pipeline.trained_model import save_training_result
    from e2eai.storage import open_store
    from e2eai.training.run import run_training

    store = open_store(settings.artifacts)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        frame = pd.read_parquet(store.download(request["frame_key"], work / "frame.parquet"))
        run_dir = work / RESULT_DIR
        result = run_training(settings, frame, request["warm_start_from"], run_dir=run_dir)
        save_training_result(result, run_dir)
        for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
            store.put_file(
                f"{request['result_prefix']}/{path.relative_to(run_dir).as_posix()}", path
            )
    return request["result_prefix"]


def run_request(request_key: str) -> str:
    """Execute the training request stored at ``request_key`` in this process alone.

    Returns the result prefix.
    """
    request, settings = _read_request(request_key)
    return _train_and_upload(request, settings)


def run_request_in_world(request_key: str) -> str | None:
    """This process's part of the request in torchrun's world.

    The leader (rank 0) returns the result prefix; followers return None once the leader is
    done, and raise when it failed.
    """
    from e2eai.storage import open_store
    from e2eai.training.torch_world import TorchWorld

    request, settings = _read_request(request_key)
    # Requests stored before multi-node jobs lack the key: their job's own folder is the same.
    shared = request.get("shared_prefix") or request_key.rpartition("/")[0]
    store = open_store(settings.artifacts)
    timeout = settings.pipeline.training_timeout_seconds
    with (
        tempfile.TemporaryDirectory() as scratch,
        TorchWorld.join(store, shared, Path(scratch), timeout) as world,
    ):
        if not world.is_leader:
            world.follow()
            return None
        with world.leading():
            return _train_and_upload(request, settings)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: torchrun … -m e2eai.pipeline.cluster_entry REQUEST_KEY", file=sys.stderr)
        return 2
    from e2eai.training.worker import log_worker_progress

    log_worker_progress()
    # torchrun (and a PyTorchJob pod without it) sets WORLD_SIZE: join that world.
    if "WORLD_SIZE" in os.environ:
        result_prefix = run_request_in_world(argv[0])
    else:
        result_prefix = run_request(argv[0])
    if result_prefix is not None:
        print(result_prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
