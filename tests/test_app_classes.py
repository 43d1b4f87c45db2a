"""The app's API for multi-class tasks end to end: ``e2eai app`` in its own process in front of
a served registry champion behind the router, for an image task (``fashion``, its database on
PostgreSQL) and a text task (``support-triage``, on SQLite). See tests/class_app_fixtures.py.

A real Fashion-MNIST photo (PNG, a larger JPEG, a data: URL) is answered with every class's
probability — the served model's, recomputed here — and an occlusion saliency map, and is
stored as the model-sized PNG the model read; a message is answered with the hand-built
graph's probabilities and its word pieces' attributions. Bad photos and bad messages get a
4xx naming the field (``request.image``, ``requests[2].text``), never a 500. Feedback takes a
class's name or index, refuses anything else naming ``label``, and reaches the router's
canary samples as the class index. ``/api/task`` says the modality, the classes and the input.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from class_app_fixtures import (
    MESSAGES,
    ClassAppDeployment,
    b64,
    encoded,
    fashion_pixels,
    postgres_database,
    start_class_app,
    triage_answer,
    triage_expected,
    triage_feed,
)
from fashion_subset import INSTALLED, NOT_INSTALLED
from PIL import Image

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
FASHION = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
TRIAGE = ("negative", "neutral", "positive")


def _samples(deployment: ClassAppDeployment) -> list[list[float]]:
    manager = deployment.manager
    return manager._router_get(manager.state(), "/router/samples")["stable"]["scored"]


def _only(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    return prediction


# == images ====================================================================================


@pytest.fixture(scope="module")
def fashion(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str
) -> Iterator[ClassAppDeployment]:
    if not INSTALLED:
        pytest.skip(NOT_INSTALLED)
    with postgres_database(postgres_server) as url:
        deployment = start_class_app(
            "fashion", tmp_path_factory.mktemp("fashion-app"), database_url=url
        )
        try:
            yield deployment
        finally:
            deployment.stop()


@pytest.fixture(scope="module")
def images(fashion: ClassAppDeployment) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fashion.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return fashion_pixels(8)


def _offline(deployment: ClassAppDeployment, pixels: np.ndarray) -> np.ndarray:
    from e2eai.export.image_onnx import onnx_probabilities, session

    assert deployment.onnx is not None
    tensor = (pixels.astype(np.float32) / 255.0)[:, None]
    return onnx_probabilities(session(deployment.onnx), tensor)


def _png_pixels(text: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        assert image.format == "PNG" and image.mode == "L"
        return np.asarray(image)


def test_the_task_says_it_takes_a_photo_and_names_its_classes(images) -> None:
    task = images.get("/api/task").json()
    assert task["modality"] == "image"
    assert task["classes"] == list(FASHION)
    assert task["input"]["kind"] == "image" and task["input"]["field"] == "image"
    assert task["input"]["formats"] == ["JPEG", "PNG"] and task["input"]["shape"] == [1, 28, 28]
    assert [(f["name"], f["type"]) for f in task["fields"]] == [("image", "image")]


def test_a_png_photo_is_classified_explained_and_stored_as_the_model_read_it(
    images, fashion, pixels
) -> None:
    prediction = _only(
        images.post("/api/predictions", json={"request": {"image": b64(encoded(pixels[0]))}})
    )
    expected = _offline(fashion, pixels[:1])[0]
    served = np.asarray([prediction["class_probabilities"][name] for name in FASHION])
    np.testing.assert_allclose(served, expected, atol=1e-6)
    assert list(prediction["class_probabilities"]) == list(FASHION)
    best = int(np.argmax(expected))
    assert prediction["class_index"] == best and prediction["predicted_class"] == FASHION[best]
    assert prediction["probability"] == pytest.approx(expected[best], abs=1e-6)
    assert prediction["band"] is None
    assert prediction["model_version"] == str(fashion.versions["champion"])
    # The saliency map, one value per 4×4 square: squares that are black already change
    # nothing when hidden, and the garment does.
    saliency = prediction["explanation"]
    assert saliency["kind"] == "saliency" and saliency["class_index"] == best
    assert (saliency["patch"], saliency["height"], saliency["width"]) == (4, 28, 28)
    squares = np.asarray(saliency["squares"])
    assert squares.shape == (7, 7)
    content = pixels[0].reshape(7, 4, 7, 4).max(axis=(1, 3)) > 0
    assert np.abs(squares[~content]).max() <= 1e-6 < np.abs(squares[content]).max()
    # Stored: the class, the probabilities, the map, and the photo as the 28×28 PNG the model
    # read (PNG is lossless: exactly the file's pixels), with what the upload was.
    stored = images.get(f"/api/predictions/{prediction['id']}").json()
    assert stored["predicted_class"] == prediction["predicted_class"]
    assert stored["class_probabilities"] == prediction["class_probabilities"]
    assert stored["explanation"] == saliency
    np.testing.assert_array_equal(_png_pixels(stored["request"]["image"]["b64"]), pixels[0])
    upload = stored["request"]["image"]["upload"]
    assert (upload["format"], upload["width"], upload["height"]) == ("PNG", 28, 28)
    assert upload["bytes"] == len(encoded(pixels[0])) and len(upload["sha256"]) == 64
    assert stored["feedback"] is None


def test_a_large_jpeg_and_a_data_url_are_read_like_the_predictor_reads_them(
    images, fashion, pixels
) -> None:
    jpeg = encoded(pixels[1], "JPEG", size=(280, 280))
    prediction = _only(images.post("/api/predictions", json={"request": {"image": b64(jpeg)}}))
    stored = images.get(f"/api/predictions/{prediction['id']}").json()["request"]["image"]
    assert (stored["upload"]["format"], stored["upload"]["width"]) == ("JPEG", 280)
    kept = _png_pixels(stored["b64"])
    assert kept.shape == (28, 28)
    assert np.abs(kept.astype(int) - pixels[1]).mean() < 12  # lossy, resized: close
    # What is stored is what was served: its answer is the model's answer for those pixels.
    served = np.asarray([prediction["class_probabilities"][c] for c in FASHION])
    np.testing.assert_allclose(served, _offline(fashion, kept[None])[0], atol=1e-6)
    url = "data:image/png;base64," + b64(encoded(pixels[2]))
    from_url = _only(images.post("/api/predictions", json={"request": {"image": url}}))
    np.testing.assert_allclose(
        [from_url["class_probabilities"][c] for c in FASHION],
        _offline(fashion, pixels[2:3])[0],
        atol=1e-6,
    )


def test_a_batch_of_photos_is_answered_in_order(images, fashion, pixels) -> None:
    body = {"requests": [{"image": b64(encoded(p))} for p in pixels[:5]]}
    response = images.post("/api/predictions", json=body)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    served = np.asarray([[p["class_probabilities"][c] for c in FASHION] for p in predictions])
    np.testing.assert_allclose(served, _offline(fashion, pixels[:5]), atol=1e-6)
    assert len({p["request_id"] for p in predictions}) == 1


def _png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="GIF")
    return buffer.getvalue()


BAD_PHOTOS = {
    "not base64": ({"image": "%%% not base64"}, 422, "request.image", "not base64"),
    "not a picture": ({"image": b64(b"just some bytes")}, 422, "request.image", "not a readable"),
    "a GIF": ({"image": b64(_gif())}, 422, "request.image", "not PNG or JPEG"),
    "empty": ({"image": ""}, 422, "request.image", "at least 1 character"),
    "a number": ({"image": 42}, 422, "request.image", "string"),
    "pixels": ({"image": [[0.0] * 28] * 28}, 422, "request.image", "string"),
    "missing": ({}, 422, "request.image", "required"),
    "another field": ({"image": "AA==", "label": 3}, 422, "request.label", "not permitted"),
    "a decompression bomb": (
        {"image": b64(_png_of_size(5000, 4000))}, 413, "request.image", "exceed the limit",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_PHOTOS))
def test_a_bad_photo_is_a_4xx_naming_the_field(images, case: str) -> None:
    request, status, field, words = BAD_PHOTOS[case]
    response = images.post("/api/predictions", json={"request": request})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field, body
    assert words in body["error"], body


def test_a_bad_photo_in_a_batch_is_named_by_its_row(images, pixels) -> None:
    requests = [{"image": b64(encoded(p))} for p in pixels[:4]]
    requests[2] = {"image": b64(_gif())}
    response = images.post("/api/predictions", json={"requests": requests})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "requests[2].image"


def test_feedback_takes_a_class_name_or_index_and_reaches_the_router(
    images, fashion, pixels
) -> None:
    body = {"requests": [{"image": b64(encoded(p))} for p in pixels[:3]]}
    first, second, third = (
        p for p in images.post("/api/predictions", json=body).json()["predictions"]
    )
    before = len(_samples(fashion))
    url = "/api/predictions/{}/feedback"
    response = images.post(
        url.format(first["id"]), json={"label": "Ankle boot"}, headers=fashion.admin
    )
    assert response.json() == {"status": "stored"}
    response = images.post(url.format(second["id"]), json={"label": 2}, headers=fashion.admin)
    assert response.json() == {"status": "stored"}
    # The same class again, by index this time, is a duplicate; another class a 409.
    response = images.post(url.format(first["id"]), json={"label": 9}, headers=fashion.admin)
    assert response.json() == {"status": "duplicate"}
    response = images.post(url.format(first["id"]), json={"label": "bag"}, headers=fashion.admin)
    assert response.status_code == 409, response.text
    stored = images.get(f"/api/predictions/{first['id']}").json()["feedback"]
    assert stored["label"] == 9 and stored["source"] == "api"
    # The router scores a labelled row by what the model gave the labelled class.
    added = _samples(fashion)[before:]
    assert added == [
        pytest.approx([first["class_probabilities"]["Ankle boot"], 1], abs=1e-6),
        pytest.approx([second["class_probabilities"]["Pullover"], 1], abs=1e-6),
    ]
    # A batch of labels by name.
    response = images.post(
        "/api/feedback",
        json={"items": [{"prediction_id": third["id"], "label": "Sandal"}], "source": "ui"},
        headers=fashion.admin,
    )
    assert response.status_code == 200 and response.json()["stored"] == 1, response.text
    assert images.get(f"/api/predictions/{third['id']}").json()["feedback"]["label"] == 5


@pytest.mark.parametrize(
    ("label", "field"),
    [(10, "label"), (-1, "label"), ("Unicorn", "label"), (True, "label"), (None, "label")],
)
def test_a_label_that_is_not_a_class_is_a_422_naming_it(
    images, fashion, pixels, label, field
) -> None:
    prediction = _only(
        images.post("/api/predictions", json={"request": {"image": b64(encoded(pixels[3]))}})
    )
    response = images.post(
        f"/api/predictions/{prediction['id']}/feedback",
        json={"label": label},
        headers=fashion.admin,
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    batch = images.post(
        "/api/feedback",
        json={"items": [{"prediction_id": prediction["id"], "label": label}]},
        headers=fashion.admin,
    )
    assert batch.status_code == 422 and batch.json()["field"] == "items[0].label", batch.text


def test_history_lists_each_photo_with_its_class(images, pixels) -> None:
    _only(images.post("/api/predictions", json={"request": {"image": b64(encoded(pixels[4]))}}))
    page = images.get("/api/predictions", params={"limit": 3}).json()
    assert page["total"] >= 3
    for item in page["items"]:
        assert item["predicted_class"] in FASHION
        assert _png_pixels(item["request"]["image"]["b64"]).shape == (28, 28)
        assert item["explanation"]["kind"] == "saliency"


def test_the_openapi_document_describes_photos_and_class_labels(images) -> None:
    schemas = images.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["FashionRequest"]["properties"]["image"]["type"] == "string"
    label = schemas["ClassFeedbackIn"]["properties"]["label"]
    assert {"type": "string", "enum": list(FASHION)} in label["anyOf"]


# == text ======================================================================================


@pytest.fixture(scope="module")
def triage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClassAppDeployment]:
    deployment = start_class_app("support-triage", tmp_path_factory.mktemp("triage-app"))
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def texts(triage: ClassAppDeployment) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=triage.url, timeout=60) as client:
        yield client


def test_the_task_says_it_takes_a_message_of_at_most_280_characters(texts) -> None:
    task = texts.get("/api/task").json()
    assert task["modality"] == "text" and task["classes"] == list(TRIAGE)
    assert task["input"] == {
        "kind": "text", "field": "text", "max_chars": 280,
        "formats": None, "max_pixels": None, "shape": None,
    }  # fmt: skip
    (field,) = task["fields"]
    assert (field["name"], field["type"], field["max_length"]) == ("text", "str", 280)


def test_a_message_is_classified_with_its_word_pieces_attributions(texts, triage) -> None:
    prediction = _only(texts.post("/api/predictions", json={"request": {"text": MESSAGES[0]}}))
    expected = triage_expected(MESSAGES[:1])[0]
    served = [prediction["class_probabilities"][c] for c in TRIAGE]
    np.testing.assert_allclose(served, expected, atol=1e-6)
    best = int(np.argmax(expected))
    assert prediction["predicted_class"] == TRIAGE[best] and prediction["class_index"] == best
    explanation = prediction["explanation"]
    assert explanation["kind"] == "tokens" and explanation["class_index"] == best
    tokens = [t["token"] for t in explanation["tokens"]]
    assert tokens[:3] == ["my", "flight", "was"]
    # Each piece's attribution is the fall of the class's probability with that piece masked
    # out ([CLS] and [SEP] never are), recomputed here from the graph's formula.
    feed = triage_feed(MESSAGES[:1])
    ids, mask = feed["input_ids"], feed["attention_mask"]
    pieces = range(1, int(mask[0].sum()) - 1)
    masked = np.repeat(mask, len(pieces), axis=0)
    masked[np.arange(len(pieces)), list(pieces)] = 0
    falls = expected[best] - triage_answer(np.repeat(ids, len(pieces), axis=0), masked)[:, best]
    attributions = [t["attribution"] for t in explanation["tokens"]]
    np.testing.assert_allclose(attributions, falls, atol=1e-5)
    stored = texts.get(f"/api/predictions/{prediction['id']}").json()
    assert stored["request"] == {"text": MESSAGES[0]}
    assert stored["explanation"] == explanation


def test_a_batch_of_messages_is_answered_in_order(texts) -> None:
    response = texts.post("/api/predictions", json={"requests": [{"text": m} for m in MESSAGES]})
    assert response.status_code == 200, response.text
    served = [[p["class_probabilities"][c] for c in TRIAGE] for p in response.json()["predictions"]]
    np.testing.assert_allclose(served, triage_expected(MESSAGES), atol=1e-6)


BAD_MESSAGES = {
    "empty": ("", "at least 1 character"),
    "only spaces": ("   \n ", "the message is empty"),
    "too long": ("x" * 281, "at most 280 characters"),
    "a number": (42, "string"),
    "null": (None, "string"),
    "a lone surrogate": ("hello \ud800", "valid string"),
}


def _post_ascii(client: httpx.Client, body: dict) -> httpx.Response:
    """JSON with every non-ASCII character escaped: a lone surrogate (``\\ud800``) is valid
    JSON text, though not encodable as UTF-8."""
    return client.post(
        "/api/predictions",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )


@pytest.mark.parametrize("case", list(BAD_MESSAGES))
def test_a_bad_message_is_a_422_naming_the_field(texts, case: str) -> None:
    value, words = BAD_MESSAGES[case]
    response = _post_ascii(texts, {"request": {"text": value}})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "request.text"
    assert words in response.json()["error"], response.json()
    batch = [{"text": m} for m in MESSAGES]
    batch[1] = {"text": value}
    response = _post_ascii(texts, {"requests": batch})
    assert response.status_code == 422 and response.json()["field"] == "requests[1].text"


def test_a_message_with_another_field_is_refused(texts) -> None:
    response = texts.post("/api/predictions", json={"request": {"text": "hi", "lang": "en"}})
    assert response.status_code == 422 and response.json()["field"] == "request.lang"


def test_feedback_on_a_message_is_a_class_name_or_index(texts, triage) -> None:
    predictions = texts.post(
        "/api/predictions", json={"requests": [{"text": m} for m in MESSAGES]}
    ).json()["predictions"]
    before = len(_samples(triage))
    response = texts.post(
        "/api/feedback",
        json={
            "items": [
                {"prediction_id": predictions[0]["id"], "label": "negative"},
                {"prediction_id": predictions[1]["id"], "label": 2},
                {"prediction_id": "no-such-prediction", "label": "neutral"},
            ],
            "source": "replay",
        },
        headers=triage.admin,
    )
    assert response.status_code == 200, response.text
    assert [i["status"] for i in response.json()["items"]] == ["stored", "stored", "unknown"]
    labels = [texts.get(f"/api/predictions/{p['id']}").json()["feedback"] for p in predictions]
    assert [None if f is None else f["label"] for f in labels] == [0, 2, None]
    added = _samples(triage)[before:]
    assert added == [
        pytest.approx([predictions[0]["class_probabilities"]["negative"], 1], abs=1e-6),
        pytest.approx([predictions[1]["class_probabilities"]["positive"], 1], abs=1e-6),
    ]
    response = texts.post(
        f"/api/predictions/{predictions[2]['id']}/feedback", json={"label": 3}, headers=triage.admin
    )
    assert response.status_code == 422 and response.json()["field"] == "label"
    assert "negative, neutral, positive" in response.json()["error"]
