"""The app's backend API end to end: ``e2eai app`` in its own process in front of a served
registry champion with Feast enrichment, real 2013 flights, the app database on SQLite.

Predictions (one and a batch) are answered and stored; bad input is a 4xx naming the field;
feedback needs the admin token and is idempotent (a conflicting label is a 409 naming both),
one label at a time or many in one request (each reported, the router getting them row by row);
history pages and filters; models, rollout (canary deploy and rollback through the API, with
the audit log saying who), health, readiness, Prometheus metrics and the OpenAPI document.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest
from app_fixtures import AppDeployment, start_app_deployment

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


@pytest.fixture(scope="module")
def deployment(
    flight_window_run, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppDeployment]:
    deployment = start_app_deployment(
        flight_window_run, tmp_path_factory.mktemp("app-home"), max_body_bytes=200_000
    )
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def client(deployment: AppDeployment) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployment.url, timeout=30) as c:
        yield c


def _predict(client: httpx.Client, request: dict) -> dict:
    response = client.post("/api/predictions", json={"request": request})
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    return prediction


def test_a_real_flight_is_predicted_and_stored(client, deployment) -> None:
    flight = deployment.requests[0]
    prediction = _predict(client, flight)
    assert 0.0 <= prediction["probability"] <= 1.0
    assert prediction["band"] in {"low", "medium", "high"}
    assert prediction["model_version"] == str(deployment.versions["champion"])
    assert prediction["slot"] == "stable"
    stored = client.get(f"/api/predictions/{prediction['id']}").json()
    assert stored["probability"] == pytest.approx(prediction["probability"])
    assert stored["request"]["tailnum"] == flight["tailnum"]
    assert stored["feedback"] is None
    # The model inputs it was answered from are stored: the request's and Feast's.
    assert stored["features"]["carrier"] == flight["carrier"]
    assert set(stored["features"]) > set(flight) - {"flight", "tailnum", "scheduled_departure"}
    assert stored["explanation"] == prediction["explanation"]
    # The same flight asked again gets the same answer (the model is pure).
    again = _predict(client, flight)
    assert again["probability"] == pytest.approx(prediction["probability"])
    assert again["id"] != prediction["id"]


def stored_features(client: httpx.Client, prediction: dict) -> dict:
    return client.get(f"/api/predictions/{prediction['id']}").json()["features"]


def test_the_explanation_adds_up_to_the_served_logit(client, deployment) -> None:
    """Faithfulness through the whole path (app → router → predictor with Feast): the
    contributions plus the base value are the logit of the probability the app answered."""
    for flight in deployment.requests[:10]:
        prediction = _predict(client, flight)
        explanation = prediction["explanation"]
        contributions, rest = explanation["contributions"], explanation["rest"]
        p = prediction["probability"]
        logit = math.log(p) - math.log1p(-p)
        total = explanation["base_value"] + sum(c["contribution"] for c in contributions)
        assert total + rest["contribution"] == pytest.approx(logit, abs=1e-4)
        # The eight largest (app.explanation_features), the rest summed: every input counted.
        assert len(contributions) == 8
        assert rest["features"] + 8 == len(stored_features(client, prediction)) + 1  # + deep
        sizes = [abs(c["contribution"]) for c in contributions]
        assert sizes == sorted(sizes, reverse=True)
        assert min(sizes) >= abs(rest["contribution"]) / rest["features"]
        named = {c["feature"]: c["value"] for c in contributions}
        if "carrier" in named:
            assert named["carrier"] == flight["carrier"]
        if "distance" in named:
            assert named["distance"] == pytest.approx(flight["distance"])


def test_a_batch_of_the_next_hours_flights_is_answered_in_order(client, deployment) -> None:
    flights = deployment.requests[:60]
    assert len(flights) >= 20
    response = client.post("/api/predictions", json={"requests": flights})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(flights)
    singles = [_predict(client, f)["probability"] for f in flights[:3]]
    assert [p["probability"] for p in predictions[:3]] == pytest.approx(singles)
    assert len({p["request_id"] for p in predictions}) == 1  # one serving call


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"distance": -5}, "request.distance"),
        ({"distance": "far"}, "request.distance"),
        ({"carrier": "TOOLONG"}, "request.carrier"),
        ({"scheduled_departure": "2013-01-10T08:00:00"}, "request.scheduled_departure"),
        ({"scheduled_departure": "yesterday"}, "request.scheduled_departure"),
        ({"gate": "B12"}, "request.gate"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client, deployment, change, field) -> None:
    response = client.post("/api/predictions", json={"request": deployment.requests[0] | change})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert field.split(".")[-1] in response.json()["error"]


def test_malformed_bodies_are_4xx_never_5xx(client, deployment) -> None:
    flights = deployment.requests[:5]
    broken = [dict(f) for f in flights]
    broken[3]["flight"] = 0
    cases = [
        ({"requests": broken}, 422, "requests[3].flight"),
        ({"request": flights[0], "requests": flights}, 422, None),
        ({}, 422, None),
        ({"requests": []}, 422, "requests"),
    ]
    for body, status, field in cases:
        response = client.post("/api/predictions", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["field"] == field
    for content in [b"{not json", b"\xff\xfe{", b"[]", b"null"]:
        response = client.post(
            "/api/predictions", content=content, headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (content, response.text)
    big = client.post("/api/predictions", content=b"{" + b" " * 300_000 + b"}")
    assert big.status_code == 413


def test_feedback_needs_the_token_and_is_stored_once(client, deployment) -> None:
    prediction = _predict(client, deployment.requests[1])
    url = f"/api/predictions/{prediction['id']}/feedback"
    assert client.post(url, json={"label": 1}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post(url, json={"label": 1}, headers=wrong).status_code == 401
    first = client.post(url, json={"label": 1, "source": "ops"}, headers=deployment.admin)
    assert first.status_code == 200 and first.json() == {"status": "stored"}
    again = client.post(url, json={"label": 1}, headers=deployment.admin)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    conflict = client.post(url, json={"label": 0}, headers=deployment.admin)
    assert conflict.status_code == 409
    assert "1" in conflict.json()["error"] and "0" in conflict.json()["error"]
    missing = client.post(
        "/api/predictions/does-not-exist/feedback", json={"label": 1}, headers=deployment.admin
    )
    assert missing.status_code == 404
    bad = client.post(url, json={"label": 2}, headers=deployment.admin)
    assert bad.status_code == 422 and bad.json()["field"] == "label"
    stored = client.get(f"/api/predictions/{prediction['id']}").json()
    assert stored["feedback"]["label"] == 1 and stored["feedback"]["source"] == "ops"
    with_feedback = client.get("/api/predictions", params={"has_feedback": "true"}).json()
    assert prediction["id"] in {item["id"] for item in with_feedback["items"]}


def test_a_batchs_feedback_reaches_the_routers_canary_samples_row_by_row(
    client, deployment
) -> None:
    """The batch's predictions share one request id; each label lands on its own row."""
    response = client.post("/api/predictions", json={"requests": deployment.requests[5:8]})
    predictions = response.json()["predictions"]
    manager = deployment.manager

    def scored() -> list[list[float]]:
        return manager._router_get(manager.state(), "/router/samples")["stable"]["scored"]

    before = len(scored())
    for prediction, label in ((predictions[2], 1), (predictions[0], 0)):
        url = f"/api/predictions/{prediction['id']}/feedback"
        assert client.post(url, json={"label": label}, headers=deployment.admin).status_code == 200
    added = scored()[before:]
    assert added == [
        [pytest.approx(predictions[2]["probability"], abs=1e-6), 1],
        [pytest.approx(predictions[0]["probability"], abs=1e-6), 0],
    ]


def _feedback_count(client: httpx.Client, status: str) -> float:
    line = f'e2eai_app_feedback_total{{status="{status}"}} '
    found = [row for row in client.get("/metrics").text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def test_bulk_feedback_reports_each_label_and_stores_the_rest(client, deployment) -> None:
    response = client.post("/api/predictions", json={"requests": deployment.requests[10:14]})
    fresh, twice, clashing, labelled = (p["id"] for p in response.json()["predictions"])
    url = f"/api/predictions/{labelled}/feedback"
    assert client.post(url, json={"label": 1}, headers=deployment.admin).status_code == 200
    before = {s: _feedback_count(client, s) for s in ("stored", "duplicate", "conflict", "unknown")}
    items = [
        {"prediction_id": fresh, "label": 1},
        {"prediction_id": twice, "label": 0},
        {"prediction_id": twice, "label": 0},
        {"prediction_id": clashing, "label": 1},
        {"prediction_id": clashing, "label": 0},
        {"prediction_id": labelled, "label": 0},
        {"prediction_id": "does-not-exist", "label": 1},
    ]
    body = {"items": items, "source": "replay"}
    assert client.post("/api/feedback", json=body).status_code == 401

    answer = client.post("/api/feedback", json=body, headers=deployment.admin)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "stored": 3,
        "duplicate": 1,
        "conflict": 2,
        "unknown": 1,
        "items": [
            {"prediction_id": item["prediction_id"], "status": status}
            for item, status in zip(
                items,
                ["stored", "stored", "duplicate", "stored", "conflict", "conflict", "unknown"],
                strict=True,
            )
        ],
    }
    labels = {
        pid: client.get(f"/api/predictions/{pid}").json()["feedback"]
        for pid in (fresh, twice, clashing, labelled)
    }
    assert {pid: (f["label"], f["source"]) for pid, f in labels.items()} == {
        fresh: (1, "replay"),
        twice: (0, "replay"),
        clashing: (1, "replay"),  # the first label sent wins, the second is refused
        labelled: (1, "api"),  # a stored label is never changed
    }
    after = {s: _feedback_count(client, s) for s in before}
    assert {s: after[s] - before[s] for s in before} == {
        "stored": 3,
        "duplicate": 1,
        "conflict": 2,
        "unknown": 1,
    }
    again = client.post("/api/feedback", json=body, headers=deployment.admin).json()
    assert again["stored"] == 0 and again["duplicate"] == 4  # a replayed batch changes nothing


def _labels(*items: dict) -> dict:
    return {"items": list(items)}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_labels(), "items"),
        (_labels(*[{"prediction_id": "x", "label": 1}] * 5001), "items"),  # over 5000
        (
            _labels({"prediction_id": "a", "label": 1}, {"prediction_id": "b", "label": 2}),
            "items[1].label",
        ),
        (_labels({"prediction_id": "a", "label": "yes"}), "items[0].label"),
        (_labels({"label": 1}), "items[0].prediction_id"),
        (_labels({"prediction_id": "", "label": 1}), "items[0].prediction_id"),
        (_labels({"prediction_id": "a" * 65, "label": 1}), "items[0].prediction_id"),
        (_labels({"prediction_id": "a", "label": 1, "note": "x"}), "items[0].note"),
        (_labels({"prediction_id": "a", "label": 1}) | {"source": "a b"}, "source"),
        ({"labels": [{"prediction_id": "a", "label": 1}]}, "items"),
    ],
)
def test_bad_bulk_feedback_is_a_4xx_naming_the_field(client, deployment, body, field) -> None:
    response = client.post("/api/feedback", json=body, headers=deployment.admin)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["error"].startswith(f"{field}: ")


def test_bulk_feedback_reaches_the_routers_canary_samples_row_by_row(client, deployment) -> None:
    """Labels of two batches' predictions, interleaved, in one request: each lands on its own
    row of its own request; only the stored ones are forwarded."""
    first = client.post("/api/predictions", json={"requests": deployment.requests[20:23]})
    second = client.post("/api/predictions", json={"requests": deployment.requests[23:25]})
    a, b = first.json()["predictions"], second.json()["predictions"]
    assert a[0]["request_id"] != b[0]["request_id"]
    manager = deployment.manager
    url = f"/api/predictions/{a[1]['id']}/feedback"
    assert client.post(url, json={"label": 1}, headers=deployment.admin).status_code == 200

    def scored() -> list[list[float]]:
        return manager._router_get(manager.state(), "/router/samples")["stable"]["scored"]

    before = len(scored())
    sent = [(a[2], 1), (b[0], 0), (a[1], 0), (a[0], 0), (b[1], 1), ({"id": "unknown"}, 1)]
    items = [{"prediction_id": p["id"], "label": label} for p, label in sent]
    answer = client.post("/api/feedback", json={"items": items}, headers=deployment.admin)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["stored"], answer.json()["conflict"]) == (4, 1)

    added = scored()[before:]
    # One entry per request, in the order first labelled; its rows in the order sent.
    assert added == [
        [pytest.approx(a[2]["probability"], abs=1e-6), 1],
        [pytest.approx(a[0]["probability"], abs=1e-6), 0],
        [pytest.approx(b[0]["probability"], abs=1e-6), 0],
        [pytest.approx(b[1]["probability"], abs=1e-6), 1],
    ]


def test_history_pages_and_filters(client, deployment) -> None:
    client.post("/api/predictions", json={"requests": deployment.requests[:25]})
    total = client.get("/api/predictions", params={"limit": 1}).json()["total"]
    assert total >= 25
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/predictions", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == total
    stable = client.get("/api/predictions", params={"slot": "stable", "limit": 500}).json()
    assert stable["total"] == total and all(i["slot"] == "stable" for i in stable["items"])
    other = client.get("/api/predictions", params={"model_version": "999"}).json()
    assert other["total"] == 0 and other["items"] == []
    assert client.get("/api/predictions", params={"slot": "blue"}).status_code == 422
    assert client.get("/api/predictions", params={"cursor": "garbage"}).status_code == 400
    naive = client.get("/api/predictions", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["field"] == "since"


def test_models_rollout_and_the_audit_log(client, deployment) -> None:
    models = client.get("/api/models").json()["models"]
    stages = {m["version"]: m["stage"] for m in models}
    champion, candidate = deployment.versions["champion"], deployment.versions["candidate"]
    assert stages == {champion: "champion", candidate: "candidate"}
    rollout = client.get("/api/rollout").json()
    assert rollout["serving"] and rollout["canary"] is None
    assert rollout["stable"] == {"version": str(champion), "weight": 100, "healthy": True}

    body = {"version": candidate, "percent": 50, "reason": "try v2"}
    assert client.post("/api/rollout/canary", json=body).status_code == 401
    deployed = client.post("/api/rollout/canary", json=body, headers=deployment.admin)
    assert deployed.status_code == 200, deployed.text
    assert deployed.json()["canary"]["weight"] == 50
    slots = {_predict(client, f)["slot"] for f in deployment.requests[:30]}
    assert slots == {"stable", "canary"}
    again = client.post("/api/rollout/canary", json=body, headers=deployment.admin)
    assert again.status_code == 409 and "already deployed" in again.json()["error"]
    rolled = client.post(
        "/api/rollout/rollback", json={"reason": "test over"}, headers=deployment.admin
    )
    assert rolled.status_code == 200 and rolled.json()["canary"] is None
    records = client.get("/api/audit", headers=deployment.admin).json()["records"]
    assert [(r["action"], r["outcome"]) for r in records[:3]] == [
        ("rollback", "done"),
        ("deploy", "refused"),
        ("deploy", "done"),
    ]
    assert all(r["actor"].startswith("api (127.0.0.1") for r in records[:3])
    assert client.get("/api/audit").status_code == 401
    stages = {m["version"]: m["stage"] for m in client.get("/api/models").json()["models"]}
    assert stages[candidate] == "rejected"


def test_operations_endpoints(client, deployment) -> None:
    _predict(client, deployment.requests[2])
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"database": True, "serving": True}
    metrics = client.get("/metrics").text
    champion = deployment.versions["champion"]
    assert f'e2eai_app_predictions_total{{model_version="{champion}",slot="stable"}}' in metrics
    assert 'e2eai_app_request_seconds_bucket{le="0.02",route="/api/predictions"}' in metrics
    assert "e2eai_app_spool_records 0.0" in metrics
    schema = client.get("/openapi.json").json()
    request = next(v for k, v in schema["components"]["schemas"].items() if k.endswith("Request"))
    assert set(request["properties"]) == {f for f in deployment.requests[0]}
    assert client.get("/docs").status_code == 200
    assert client.get("/api/monitoring/reports").json() == {"reports": []}
    task = client.get("/api/task").json()
    assert task["name"] == "flights" and next(f["name"] for f in task["fields"]) == "carrier"
