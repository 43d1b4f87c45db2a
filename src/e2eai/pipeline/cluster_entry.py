"""Container entry of cluster training jobs: ``python -m e2eai.pipeline.cluster_entry KEY``.

Reads the request the train step stored (settings, training frame key, warm start), runs
``run_training`` in the pod and uploads the result directory next to the request.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from e2eai.pipeline.cluster_training import RESULT_DIR


def run_request(request_key: str) -> str:
    """Execute the training request stored at ``request_key``; return the result prefix."""
    import pandas as pd

    from e2eai.config import get_settings
    from e2eai.pipeline.run_settings import settings_from_json
    from e2eai.pipeline.trained_model import save_training_result
    from e2eai.storage import open_store
    from e2eai.training.run import run_training

    # The job's environment carries the run's settings (E2EAI_*), so it names the same store.
    request = json.loads(open_store(get_settings().artifacts).get_bytes(request_key))
    settings = settings_from_json(request["settings_json"])
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


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m e2eai.pipeline.cluster_entry REQUEST_KEY", file=sys.stderr)
        return 2
    print(run_request(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
