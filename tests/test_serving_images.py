"""An image task's model behind a real kserve.ModelServer process: V2 FP32 tensors, PNG/JPEG
uploads (base64 in JSON, raw bytes with the binary extension, V1 ``{"b64": …}``), class
probabilities out, and every malformed image refused with a 4xx naming the input.

The served graph is a seeded, untrained CNN exported by the platform's image exporter: the
serving contract, not model quality, is under test. The images are real Fashion-MNIST
test images from Debian's package.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from class_app_fixtures import b64, encoded, fashion_cnn_onnx, fashion_pixels
from onnx_fixtures import post_binary_input
from PIL import Image

from e2eai.config import ServingSettings, Settings
from e2eai.export.image_onnx import onnx_probabilities, session
from e2eai.serving.client import v2_probabilities
from e2eai.serving.image_inputs import MAX_PIXELS
from e2eai.serving.processes import PredictorProcess, start_predictor, stop_process
from e2eai.serving.rollout import ModelSource
from e2eai.serving.router import _classes, _probabilities, _scored
from e2eai.tasks.fashion import DEBIAN_DIR
from e2eai.tasks.fashion.data import PARTS

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not (DEBIAN_DIR / PARTS["t10k"][0]).is_file(),
        reason=f"Debian package dataset-fashion-mnist is not installed ({DEBIAN_DIR})",
    ),
]
NAME = "fashion-classifier"


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """Eight real test images, uint8 [8, 28, 28]."""
    return fashion_pixels(8)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fashion_cnn_onnx(tmp_path_factory.mktemp("model") / "cnn.onnx")


@pytest.fixture(scope="module")
def predictor(
    tmp_path_factory: pytest.TempPathFactory, onnx_path: Path
) -> Iterator[PredictorProcess]:
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        task="fashion",
        serving=ServingSettings(model_name=NAME, max_payload_bytes=400_000, max_batch_rows=16),
    )
    process = start_predictor(settings, ModelSource.from_path(onnx_path, "3"), slot="stable")
    try:
        yield process
    finally:
        stop_process(process.pid, grace=5)


@pytest.fixture(scope="module")
def client(predictor: PredictorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{predictor.http_port}", timeout=20) as c:
        yield c


def _offline(onnx_path: Path, images: np.ndarray) -> np.ndarray:
    return onnx_probabilities(session(onnx_path), images)


def _tensor(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) / 255.0)[:, None]


def _encoded(pixels: np.ndarray, fmt: str = "PNG", size: tuple[int, int] | None = None) -> bytes:
    return encoded(pixels, fmt, size)


def _b64(data: bytes) -> str:
    return b64(data)


def _infer(client: httpx.Client, inputs: list[dict]) -> httpx.Response:
    return client.post(f"/v2/models/{NAME}/infer", json={"inputs": inputs})


def _files(files: list[bytes]) -> dict:
    return {"name": "image", "datatype": "BYTES", "shape": [len(files)],
            "data": [_b64(f) for f in files]}  # fmt: skip


# -- what a good request gets ------------------------------------------------------------------


def test_fp32_images_are_answered_with_each_class_probability(client, onnx_path, pixels) -> None:
    images = _tensor(pixels)
    response = _infer(
        client,
        [
            {
                "name": "image",
                "datatype": "FP32",
                "shape": list(images.shape),
                "data": images.reshape(-1).tolist(),
            }
        ],
    )
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["name"] == "probability" and output["shape"] == [8, 10]
    served = np.asarray(v2_probabilities(response.json()))
    assert served.shape == (8, 10)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(served, _offline(onnx_path, images), atol=1e-6)


def test_the_binary_tensor_extension_carries_fp32_images(client, onnx_path, pixels) -> None:
    images = _tensor(pixels[:3])
    payload = images.astype("<f4").tobytes()
    url = f"/v2/models/{NAME}/infer"
    response = post_binary_input(client, url, "image", "FP32", [3, 1, 28, 28], payload)
    assert response.status_code == 200, response.text
    served = np.asarray(v2_probabilities(response.json()))
    np.testing.assert_allclose(served, _offline(onnx_path, images), atol=1e-6)


def test_a_png_upload_is_the_same_image_as_its_tensor(client, onnx_path, pixels) -> None:
    """PNG is lossless: the decoded upload is exactly the tensor, so are the answers."""
    response = _infer(client, [_files([_encoded(p) for p in pixels[:4]])])
    assert response.status_code == 200, response.text
    served = np.asarray(v2_probabilities(response.json()))
    np.testing.assert_allclose(served, _offline(onnx_path, _tensor(pixels[:4])), atol=1e-6)


def test_raw_png_bytes_with_the_binary_extension_are_decoded(client, onnx_path, pixels) -> None:
    files = [_encoded(p) for p in pixels[:2]]
    payload = b"".join(struct.pack("<I", len(f)) + f for f in files)
    response = post_binary_input(client, f"/v2/models/{NAME}/infer", "image", "BYTES", [2], payload)
    assert response.status_code == 200, response.text
    served = np.asarray(v2_probabilities(response.json()))
    np.testing.assert_allclose(served, _offline(onnx_path, _tensor(pixels[:2])), atol=1e-6)


def test_a_larger_upload_is_resized_and_a_jpeg_is_accepted(client, onnx_path, pixels) -> None:
    """A 56×56 copy (each pixel doubled) comes back to 28×28; a JPEG decodes (lossily) to
    nearly the same image."""
    response = _infer(client, [_files([_encoded(pixels[0], size=(56, 56))])])
    assert response.status_code == 200, response.text
    resized = np.asarray(v2_probabilities(response.json()))
    exact = _offline(onnx_path, _tensor(pixels[:1]))
    assert np.abs(resized - exact).max() < 0.05
    response = _infer(client, [_files([_encoded(pixels[0], "JPEG")])])
    assert response.status_code == 200, response.text
    assert np.asarray(v2_probabilities(response.json())).shape == (1, 10)


def test_v1_takes_nested_pixels_or_a_b64_file(client, onnx_path, pixels) -> None:
    image = _tensor(pixels[:1])
    instances = [{"image": image[0].tolist()}, {"image": {"b64": _b64(_encoded(pixels[0]))}}]
    response = client.post(f"/v1/models/{NAME}:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    predictions = np.asarray(response.json()["predictions"])
    assert predictions.shape == (2, 10)
    np.testing.assert_allclose(predictions[0], predictions[1], atol=1e-6)
    np.testing.assert_allclose(predictions[:1], _offline(onnx_path, image), atol=1e-6)


def test_metadata_states_the_image_input_and_class_output(client) -> None:
    metadata = client.get(f"/v2/models/{NAME}").json()
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert metadata["outputs"][0]["shape"] == [-1, 10]


# -- what a bad one gets ---------------------------------------------------------------------


def _png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="GIF")
    return buffer.getvalue()


ZEROS = [0.0] * 784
BAD = {
    "wrong shape": ([{"name": "image", "datatype": "FP32", "shape": [1, 28, 28], "data": ZEROS}],
                    400, "is not [N, 1, 28, 28]"),
    "values not in [0, 1]": ([{"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28],
                               "data": [255.0] * 784}], 400, "not in [0, 1]"),
    "a value too few": ([{"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28],
                          "data": ZEROS[:-1]}], 400, "783 values"),
    "strings for numbers": ([{"name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28],
                              "data": ["0"] * 784}], 400, "must be numbers"),
    "an unknown input": ([{"name": "picture", "datatype": "FP32", "shape": [1, 1, 28, 28],
                           "data": ZEROS}], 400, "picture"),
    "not base64": ([{"name": "image", "datatype": "BYTES", "shape": [1],
                     "data": ["%%% not base64"]}], 400, "not base64"),
    "not an image file": ([_files([b"just some bytes, not a picture"])], 400, "not a readable"),
    "a GIF": ([_files([_gif()])], 400, "not PNG or JPEG"),
    "a decompression bomb": ([_files([_png_of_size(5000, 4000)])], 413, "exceed the limit"),
    "too many images": ([{"name": "image", "datatype": "FP32", "shape": [17, 1, 28, 28],
                          "data": ZEROS * 17}], 413, "17 images"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_image_gets_a_4xx_naming_the_input(client, case: str) -> None:
    inputs, status, words = BAD[case]
    response = _infer(client, inputs)
    assert response.status_code == status, response.text
    body = response.json()
    assert words in body["error"], body
    field = "picture" if case == "an unknown input" else "image"
    assert body["field"] == field or field in body["error"], body


def test_the_bomb_limit_is_what_the_test_exceeds() -> None:
    assert 5000 * 4000 > MAX_PIXELS >= 28 * 28 * 1000


# -- the router's view of class probabilities ----------------------------------------------------


def test_the_router_reads_class_probabilities_and_scores_the_labelled_class() -> None:
    v2 = orjson.dumps(
        {
            "outputs": [
                {
                    "name": "probability",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "data": [0.7, 0.2, 0.1, 0.1, 0.3, 0.6],
                }
            ]
        }
    )
    rows = _probabilities(v2)
    assert rows == [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]
    assert _classes(rows) == 3
    assert _probabilities(orjson.dumps({"predictions": [[0.5, 0.5], [0.9, 0.1]]})) == [
        [0.5, 0.5],
        [0.9, 0.1],
    ]
    # A row of class probabilities is scored by what it gave the labelled class.
    assert _scored(rows[1], 2) == (0.6, 1) and _scored(rows[0], 1) == (0.2, 1)
    # Binary answers are unchanged: one P(positive) per row, scored with their label.
    binary = _probabilities(orjson.dumps({"outputs": [{"name": "probability", "shape": [2],
                                                       "data": [0.25, 0.75]}]}))  # fmt: skip
    assert binary == [0.25, 0.75] and _classes(binary) == 2 and _scored(0.25, 0) == (0.25, 0)
    ragged = orjson.dumps({"outputs": [{"name": "probability", "shape": [2, 3], "data": [0.1]}]})
    assert _probabilities(ragged) is None


# -- explanations: occlusion saliency ------------------------------------------------------------


def test_explain_returns_an_occlusion_map_that_the_model_bears_out(
    client, onnx_path, pixels
) -> None:
    image = _tensor(pixels[:1])
    response = client.post(
        f"/v1/models/{NAME}:explain", json={"instances": [{"image": image[0].tolist()}]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    (explained,) = body["explanations"]
    saliency = np.asarray(explained["saliency"])
    assert saliency.shape == (28, 28)
    probabilities = _offline(onnx_path, image)[0]
    assert (
        explained["class"]
        == int(np.argmax(probabilities))
        == int(np.argmax(body["predictions"][0]))
    )
    patch = explained["patch"]
    squares = image[0, 0].reshape(28 // patch, patch, 28 // patch, patch).max(axis=(1, 3))
    # Hiding a square that is already black changes nothing: its saliency is 0 (up to the
    # rounding of a batched inference).
    blank = np.kron(squares == 0, np.ones((patch, patch), dtype=bool))
    assert blank.any() and np.abs(saliency[blank]).max() <= 1e-6
    assert np.abs(saliency[~blank]).max() > 1e-4  # and the content does matter
    # A square with content: its value is the fall of the class probability when hidden.
    r, c = np.argwhere(squares > 0)[len(np.argwhere(squares > 0)) // 2]
    hidden = image.copy()
    hidden[0, 0, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = 0
    fall = probabilities[explained["class"]] - _offline(onnx_path, hidden)[0, explained["class"]]
    assert saliency[r * patch, c * patch] == pytest.approx(fall, abs=1e-5)
