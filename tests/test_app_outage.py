"""The app starts and answers while its PostgreSQL database is down, and nothing is lost.

``e2eai app`` is started against a stopped PostgreSQL server: it comes up (not ready),
answers real flight predictions, spools their records; once the server is started, the
schema is migrated, the spool drains, and every prediction is in the history exactly once.
Feedback, which has no spool, is a 503 meanwhile (the client sends it again).
"""

from __future__ import annotations

import time

import httpx
import pytest
from app_fixtures import start_app_deployment

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def test_the_app_answers_while_its_database_is_down(
    flight_window_run, restartable_postgres, tmp_path
) -> None:
    restartable_postgres.stop()
    deployment = start_app_deployment(
        flight_window_run, tmp_path / "home", database_url=restartable_postgres.url
    )
    try:
        with httpx.Client(base_url=deployment.url, timeout=30) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["database"] is False
            ids = []
            for flight in deployment.requests[:20]:
                response = client.post("/api/predictions", json={"request": flight})
                assert response.status_code == 200, response.text
                ids.append(response.json()["predictions"][0]["id"])
            assert "e2eai_app_spool_records 20.0" in client.get("/metrics").text
            assert client.get("/api/predictions").status_code == 503  # says so, no 500
            labels = {"items": [{"prediction_id": i, "label": 1} for i in ids]}
            refused = client.post("/api/feedback", json=labels, headers=deployment.admin)
            assert refused.status_code == 503 and "not stored" in refused.json()["error"]

            restartable_postgres.start()
            deadline = time.monotonic() + 60
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the app did not become ready"
                time.sleep(0.5)
            while True:
                page = client.get("/api/predictions", params={"limit": 500}).json()
                if page["total"] >= len(ids) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            stored = [item["id"] for item in page["items"]]
            assert sorted(stored) == sorted(ids)  # every one, once
            assert "e2eai_app_spool_records 0.0" in client.get("/metrics").text
    finally:
        deployment.stop()
