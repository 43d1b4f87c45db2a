"""Small ONNX models that follow the serving contract, built for serving tests.

One graph input per ``schema.model_features()`` feature (``[N, 1]``, float32 or string), one
output ``probability`` of class 1. Built with skl2onnx from a tiny sklearn Pipeline over the
schema columns, trained on a seeded synthetic frame whose label depends on a few features, so
that a good model's ROC-AUC is well above 0.5 and a shuffled-label model's is not.
``windows_hours`` chooses the flight task's trailing windows (``features.windows_hours``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e2eai.tasks.flights import schema

CARRIERS = ("UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN")
AIRPORTS = ("EWR", "JFK", "LGA")
DESTS = ("IAH", "MIA", "ATL", "ORD", "LAX", "BOS", "SFO", "DCA")
ENGINES = ("Turbo-fan", "Turbo-jet", "Reciprocating")


WINDOWS = schema.DEFAULT_WINDOWS_HOURS


def synthetic_features(
    n: int, seed: int = 7, windows_hours: tuple[int, ...] = WINDOWS
) -> pd.DataFrame:
    """``n`` rows of every model feature (within schema ranges) plus the label ``delayed``."""
    rng = np.random.default_rng(seed)
    frame: dict[str, object] = {}
    for feature in schema.model_features(windows_hours):
        if feature.kind == "categorical":
            choices = {
                "carrier": CARRIERS,
                "origin": AIRPORTS,
                "dest": DESTS,
                "engine_type": ENGINES,
            }.get(feature.name, ("a", "b", "c"))
            frame[feature.name] = rng.choice(choices, size=n).astype(object)
        else:
            lo = 0.0 if feature.minimum is None else float(feature.minimum)
            hi = lo + 500.0 if feature.maximum is None else float(feature.maximum)
            frame[feature.name] = rng.uniform(lo, hi, size=n).astype(np.float32)
    df = pd.DataFrame(frame)
    df["dep_hour"] = rng.integers(5, 24, size=n).astype(np.float32)
    # A label that depends on a few features, so a fitted model is clearly better than chance.
    logit = (
        -1.5
        + 4.0 * (df[schema.stats_feature_names("route", windows_hours[0])[1]] - 0.5)
        + 0.15 * (df["dep_hour"] - 14)
        + 1.2 * (df["carrier"].isin(["EV", "MQ"])).astype(float)
        + 0.03 * (df["wind_speed"] - 40)
    )
    prob = 1.0 / (1.0 + np.exp(-logit))
    df[schema.LABEL] = (rng.uniform(size=n) < prob).astype(np.int8)
    # Some feature-view values are missing, as they are when Feast has no row.
    missing = rng.uniform(size=n) < 0.05
    df.loc[missing, "wind_gust"] = np.nan
    return df


def _pipeline(windows_hours: tuple[int, ...] = WINDOWS):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(SimpleImputer(), StandardScaler()),
                schema.numeric_features(windows_hours),
            ),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                schema.categorical_features(windows_hours),
            ),
        ]
    )
    return Pipeline([("columns", columns), ("model", LogisticRegression(max_iter=500))])


def build_onnx_model(
    path: Path,
    *,
    seed: int = 7,
    shuffle_labels: bool = False,
    n: int = 2000,
    windows_hours: tuple[int, ...] = WINDOWS,
) -> Path:
    """Train a small logistic-regression Pipeline and write it as a contract-conforming ONNX."""
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    frame = synthetic_features(n, seed=seed, windows_hours=windows_hours)
    labels = frame[schema.LABEL].to_numpy()
    if shuffle_labels:
        labels = np.random.default_rng(seed + 1).permutation(labels)
    model_features = schema.model_features(windows_hours)
    features = frame[[f.name for f in model_features]]
    pipeline = _pipeline(windows_hours).fit(features, labels)
    initial_types = [
        (f.name, FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]))
        for f in model_features
    ]
    model = convert_sklearn(
        pipeline,
        initial_types=initial_types,
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    model = _expose_class1_probability(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _expose_class1_probability(model):
    """Replace the outputs by ``probability`` = column 1 of the class probabilities, shape [N]."""
    from onnx import TensorProto, helper

    graph = model.graph
    probabilities = next(o.name for o in graph.output if o.name != "label")
    index = helper.make_tensor("class1_index", TensorProto.INT64, [], [1])
    graph.initializer.append(index)
    graph.node.append(
        helper.make_node("Gather", [probabilities, "class1_index"], ["probability"], axis=1)
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None]))
    return model


def feature_rows(
    n: int, seed: int = 11, windows_hours: tuple[int, ...] = WINDOWS
) -> list[dict[str, object]]:
    """``n`` feature rows as JSON-ready dicts (None for missing), with their labels."""
    frame = synthetic_features(n, seed=seed, windows_hours=windows_hours)
    rows = []
    for record in frame.to_dict(orient="records"):
        rows.append(
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}
        )
    return rows


def v2_body(row: dict | None = None) -> dict:
    """A V2 JSON request of one row (``feature_rows(1)[0]`` unless given)."""
    return v2_rows_body([row if row is not None else feature_rows(1)[0]])


def v2_rows_body(rows: list[dict], outputs: list[dict] | None = None, **extra: Any) -> dict:
    """A V2 JSON request of ``rows`` (feature → value), asking for ``outputs`` when given."""
    body: dict = {
        **extra,
        "inputs": [
            {
                "name": f.name,
                "datatype": f.v2_datatype,
                "shape": [len(rows), 1],
                "data": [r[f.name] for r in rows],
            }
            for f in schema.model_features()
        ],
    }
    if outputs is not None:
        body["outputs"] = outputs
    return body


def grpc_infer_request(
    rows: list[dict], model_name: str, override: dict | None = None, **fields: Any
) -> Any:
    """A gRPC ``ModelInferRequest`` of ``rows`` (``override``: feature → replacement values)."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    tensors = []
    for f in schema.model_features():
        values = [r[f.name] for r in rows]
        if override and f.name in override:
            values = override[f.name]
        if f.kind == "numeric":
            contents = pb.InferTensorContents(
                fp32_contents=[math.nan if v is None else v for v in values]
            )
        else:
            contents = pb.InferTensorContents(bytes_contents=[v.encode() for v in values])
        tensors.append(
            pb.ModelInferRequest.InferInputTensor(
                name=f.name, datatype=f.v2_datatype, shape=[len(rows), 1], contents=contents
            )
        )
    return pb.ModelInferRequest(model_name=model_name, inputs=tensors, **fields)


def build_explaining_onnx_model(path: Path, *, seed: int = 7, n: int = 3000) -> Path:
    """Train a small Wide & Deep model on synthetic rows and export it with contributions.

    The exported directory is ``path.parent``; returns the served ``model.onnx`` (fp32).
    """
    from datetime import date

    from synthetic import flight_task, synthetic_frame

    from e2eai.config import ExportSettings, TrainingSettings
    from e2eai.export import export_model
    from e2eai.training.families import family
    from e2eai.training.family import FitRequest
    from e2eai.training.split import time_split

    task = flight_task()
    frame = synthetic_frame(n, days=75, seed=seed)
    split = time_split(frame, task, date(2013, 1, 1), date(2013, 2, 28), 10, 14)
    training = TrainingSettings(epochs=2, workers=1, batch_size=256, hidden_width=32)
    request = FitRequest(task, split.train, split.validation, training, path.parent / "work")
    fitted = family("torch_mlp").fit(request)
    result = export_model(
        fitted.model_dir, split.holdout, path.parent, ExportSettings(quantize=False), task
    )
    if result.onnx_path != path:
        result.onnx_path.replace(path)
    return path


def post_binary_input(
    client: Any, url: str, name: str, datatype: str, shape: list[int], payload: bytes
) -> Any:
    """POST one V2 input sent with the binary tensor extension (``payload`` after the JSON
    header, whose length the ``inference-header-content-length`` header gives)."""
    import orjson

    tensor = {"name": name, "datatype": datatype, "shape": shape,
              "parameters": {"binary_data_size": len(payload)}}  # fmt: skip
    header = orjson.dumps({"inputs": [tensor]})
    return client.post(
        url,
        content=header + payload,
        headers={"inference-header-content-length": str(len(header))},
    )
