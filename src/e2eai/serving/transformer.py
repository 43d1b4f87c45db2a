"""The Feast transformer: the task's requests → online features → model input (preprocess).

Two ways to run it, measured side by side in ``bench/bench_serving.py``:

- in-process: :class:`~e2eai.serving.enricher.Enricher` plugged into the predictor
  (``--enrich``); no extra network hop, one process to scale;
- separate: ``python -m e2eai.serving.transformer --predictor-host …`` runs
  :class:`Transformer`, a ``kserve.Model`` whose ``preprocess`` builds the V2 request
  for the predictor (the InferenceService's transformer component on the cluster).

Either way the model input comes from the task's ``online_model_columns``, which builds the
columns with the code that builds the training rows, so serving cannot drift from training.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from e2eai.errors import InvalidInferenceRequest
from e2eai.serving.enricher import Enricher
from e2eai.serving.model_server import loopback_model_server, quiet_request_logs
from e2eai.serving.validation import Tensor, tensors_from_v2_inputs

if TYPE_CHECKING:
    pass


def _transformer_class() -> type:
    from kserve import InferInput, InferRequest, Model

    from e2eai.serving.predictor import as_kserve_error

    class Transformer(Model):
        """KServe transformer: ``preprocess`` enriches requests; kserve forwards them on."""

        def __init__(self, name: str, enricher: Enricher) -> None:
            super().__init__(name)
            self.enricher = enricher
            self.ready = True

        async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            try:
                if isinstance(payload, InferRequest):
                    request: Any = [
                        Tensor(
                            i.name,
                            i.datatype,
                            tuple(i.shape),
                            data=None if i._raw_data is not None else i.data,
                            raw=i._raw_data,
                        )
                        for i in payload.inputs
                    ]
                    request_id = payload.id
                elif isinstance(payload, dict) and "inputs" in payload:
                    request = tensors_from_v2_inputs(payload["inputs"])
                    request_id = payload.get("id")
                elif isinstance(payload, dict) and "instances" in payload:
                    request, request_id = payload["instances"], None
                else:
                    raise InvalidInferenceRequest(None, "expected V1 instances or V2 inputs")
                feed = self.enricher(request)
            except InvalidInferenceRequest as exc:
                raise as_kserve_error(exc) from None
            inputs = []
            for name, array in feed.items():
                datatype = "BYTES" if array.dtype == object else "FP32"
                tensor = InferInput(name, list(array.shape), datatype)
                tensor.set_data_from_numpy(array, binary_data=False)
                inputs.append(tensor)
            return InferRequest(self.name, inputs, request_id=request_id)

    return Transformer


def main(argv: list[str] | None = None) -> None:
    """Run the transformer as its own ModelServer in front of a predictor."""
    parser = argparse.ArgumentParser(prog="python -m e2eai.serving.transformer")
    # KServe's controller appends --model_name and --predictor_host to transformer args.
    parser.add_argument(
        "--predictor-host",
        "--predictor_host",
        dest="predictor_host",
        required=True,
        help="host:port of the predictor",
    )
    parser.add_argument("--served-name", "--model_name", dest="served_name", default=None)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    from kserve import PredictorConfig

    from e2eai.config import get_settings
    from e2eai.tasks import load_task

    settings = get_settings()
    transformer = _transformer_class()(
        args.served_name or settings.serving.model_name, Enricher(settings, load_task(settings))
    )
    server = loopback_model_server(
        args.host,
        http_port=args.http_port,
        enable_grpc=False,
        enable_latency_logging=False,
        predictor_config=PredictorConfig(
            predictor_host=args.predictor_host,
            predictor_protocol="v2",
        ),
    )
    quiet_request_logs()
    server.start([transformer])


if __name__ == "__main__":
    main()
