"""The app's pages in a real browser: pip ``playwright`` driving Debian ``chromium`` headless,
against a real deployment (``e2eai app`` in front of a served registry champion with Feast
enrichment, real 2013 flights: tests/app_fixtures.py).

A flight predicted through the generated form shows its probability, band, model version,
slot and latency (and its explanation when the API gives one); invalid input gets a message
next to its field, from the browser's own checks and from the API's 4xx; an outcome recorded
in History needs the admin token and then shows there; the Models page deploys a canary and
shows the split, the health and the decision timeline; Monitoring says when it has no
reports and links them when it has. Every page fits a 390 px phone without horizontal
scrolling, every input is found by its label, and the pages work from the keyboard. Each
test saves a screenshot of its page(s) in its ``tmp_path``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_fixtures import AppDeployment, start_app_deployment
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from e2eai.config import MonitoringSettings
from e2eai.monitoring.monitor import monitor

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = ("predict", "history", "models", "monitoring")
BANDS = {"low": "Low risk", "medium": "Medium risk", "high": "High risk"}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def deployment(
    flight_window_run, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppDeployment]:
    deployment = start_app_deployment(flight_window_run, tmp_path_factory.mktemp("app-home"))
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()


def _open_page(browser: Browser, deployment: AppDeployment, **context: Any) -> Iterator[Page]:
    """A fresh tab (own sessionStorage) on the app; fails the test on any uncaught JS error."""
    ctx = browser.new_context(base_url=deployment.url, **context)
    page = ctx.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        ctx.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture
def page(browser: Browser, deployment: AppDeployment) -> Iterator[Page]:
    yield from _open_page(browser, deployment, viewport={"width": 1280, "height": 900})


@pytest.fixture
def phone(browser: Browser, deployment: AppDeployment) -> Iterator[Page]:
    yield from _open_page(
        browser, deployment, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )


@pytest.fixture
def api(deployment: AppDeployment) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployment.url, timeout=60) as client:
        yield client


def label(name: str) -> str:
    """The form's label of a task field, as the page words it (``format.js: humanize``)."""
    words = name.replace("_", " ").replace("-", " ")
    return words[:1].upper() + words[1:]


def fill_request(page: Page, request: dict[str, Any]) -> None:
    for name, value in request.items():
        page.get_by_label(label(name), exact=True).fill(str(value))


def open_page(page: Page, name: str) -> None:
    page.goto(f"/#/{name}")
    expect(page.get_by_role("heading", level=1)).to_have_text(name.title())


def save_token(page: Page, token: str) -> None:
    page.get_by_label("Admin token", exact=True).fill(token)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#admin-token-status")).to_have_text("Saved for this tab.")


def predict(api: httpx.Client, request: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/api/predictions", json={"request": request})
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]


def is_prediction_post(response: Any) -> bool:
    return response.url.endswith("/api/predictions") and response.request.method == "POST"


def test_a_flight_predicted_in_the_form_shows_its_result(page, deployment, tmp_path) -> None:
    open_page(page, "predict")
    fill_request(page, deployment.requests[0])
    with page.expect_response(is_prediction_post) as answer:
        page.get_by_role("button", name="Predict", exact=True).click()
    assert answer.value.status == 200, answer.value.text()
    (prediction,) = answer.value.json()["predictions"]

    result = page.get_by_role("region", name="Result")
    expect(result.locator(".probability-value")).to_have_text(
        f"{prediction['probability'] * 100:.1f} %"
    )
    expect(result).to_contain_text("chance of being delayed")
    expect(result.locator(".band")).to_have_text(BANDS[prediction["band"]])
    champion = deployment.versions["champion"]
    expect(result.locator('[data-fact="model"]')).to_have_text(f"v{champion} (stable)")
    expect(result.locator('[data-fact="latency"]')).to_have_text(re.compile(r"^[\d.]+ ms$"))
    expect(result.locator('[data-fact="prediction id"]')).to_have_text(prediction["id"])
    # The champion explains itself: its eight largest contributions as bars, largest first,
    # with their signs, and what the smaller ones add up to.
    explanation = result.get_by_role("region", name="Why")
    contributions = prediction["explanation"]["contributions"]
    rest = prediction["explanation"]["rest"]
    assert len(contributions) == 8 and rest["features"] > 0
    bars = explanation.get_by_role("listitem")
    expect(bars).to_have_count(8)
    top = contributions[0]
    name = "Interactions (deep part)" if top["feature"] == "deep" else label(top["feature"])
    expect(bars.first).to_contain_text(name)
    sign = "+" if top["contribution"] >= 0 else "−"
    expect(bars.first.locator(".contribution-amount")).to_have_text(
        f"{sign}{abs(top['contribution']):.3f}"
    )
    expect(explanation.locator(".contributions-rest")).to_have_text(
        f"{rest['features']} smaller contributions add "
        f"{'+' if rest['contribution'] >= 0 else '−'}{abs(rest['contribution']):.3f}."
    )
    page.screenshot(path=tmp_path / "predict.png", full_page=True)


def test_invalid_input_gets_a_message_next_to_its_field(page, deployment, tmp_path) -> None:
    open_page(page, "predict")
    flight = deployment.requests[0]
    fill_request(page, flight | {"carrier": "TOOLONG", "distance": -5})
    posts: list[str] = []
    page.on("request", lambda request: request.method == "POST" and posts.append(request.url))
    page.get_by_role("button", name="Predict", exact=True).click()

    # The browser's own checks, from the task's field constraints: nothing is sent.
    carrier = page.get_by_label("Carrier", exact=True)
    distance = page.get_by_label("Distance", exact=True)
    alert = page.get_by_role("main").get_by_role("alert")
    expect(alert).to_have_text("Fix these 2 fields: Carrier, Distance.")
    expect(carrier).to_have_attribute("aria-invalid", "true")
    expect(carrier).to_have_accessible_description(re.compile(r"At most 3 characters \(this"))
    expect(distance).to_have_accessible_description(re.compile(r"Must be at least 1\.$"))
    expect(carrier).to_be_focused()
    assert posts == []
    page.screenshot(path=tmp_path / "predict-invalid.png", full_page=True)

    # Fixing a field clears its message as it is typed.
    carrier.fill(flight["carrier"])
    expect(carrier).not_to_have_attribute("aria-invalid", "true")
    distance.fill(str(flight["distance"]))
    expect(page.locator(".field-error:not(:empty)")).to_have_count(0)

    # The API's own 4xx: the valid request is changed on its way out (as a client the
    # browser cannot check would send it); the API's message shows next to the field it names.
    def send_negative_distance(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        body["request"]["distance"] = -5
        route.continue_(post_data=json.dumps(body))

    page.route("**/api/predictions", send_negative_distance)
    with page.expect_response(is_prediction_post) as answer:
        page.get_by_role("button", name="Predict", exact=True).click()
    assert answer.value.status == 422
    error = answer.value.json()
    assert error["field"] == "request.distance"
    said = error["error"].removeprefix("request.distance: ")
    expect(distance).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#field-distance-error")).to_have_text(said[:1].upper() + said[1:])
    expect(alert).to_have_text("The API did not accept Distance: see the message next to it.")
    expect(distance).to_be_focused()
    expect(page.get_by_role("region", name="Result")).to_be_empty()
    page.unroute("**/api/predictions")
    page.screenshot(path=tmp_path / "predict-api-error.png", full_page=True)


def test_an_outcome_recorded_in_history_shows_there(page, deployment, api, tmp_path) -> None:
    prediction = predict(api, deployment.requests[1])
    open_page(page, "history")
    page.get_by_label("Outcome", exact=True).select_option("false")
    page.get_by_role("button", name="Apply", exact=True).click()
    row = page.locator(f'tr[data-prediction-id="{prediction["id"]}"]')
    expect(row).to_contain_text(f"v{prediction['model_version']} (stable)")
    expect(row).to_contain_text(deployment.requests[1]["tailnum"])
    delayed = row.get_by_role("button", name="Delayed", exact=True)

    # No token, then a wrong one: a message saying what to do, nothing stored.
    delayed.click()
    expect(row.get_by_role("alert")).to_contain_text("This needs the admin token")
    save_token(page, "not-the-token")
    delayed.click()
    expect(row.get_by_role("alert")).to_contain_text("The admin token was refused (401)")
    assert api.get(f"/api/predictions/{prediction['id']}").json()["feedback"] is None

    save_token(page, deployment.token)
    delayed.click()
    expect(row.locator(".outcome-known")).to_have_text("Delayed")
    expect(row.get_by_role("button")).to_have_count(0)
    stored = api.get(f"/api/predictions/{prediction['id']}").json()["feedback"]
    assert stored["label"] == 1 and stored["source"] == "ui"

    # After a reload: the token is still there for this tab, and the recorded outcome is
    # listed under "Recorded".
    page.reload()
    expect(page.get_by_label("Admin token", exact=True)).to_have_value(deployment.token)
    page.get_by_label("Outcome", exact=True).select_option("true")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(row.locator(".outcome-known")).to_have_text("Delayed")
    expect(page.locator(".count")).to_contain_text("Showing 1–")
    page.screenshot(path=tmp_path / "history.png", full_page=True)

    # A conflicting label from elsewhere: the page shows the stored one and the API's 409.
    other = predict(api, deployment.requests[2])
    page.get_by_label("Outcome", exact=True).select_option("false")
    page.get_by_role("button", name="Apply", exact=True).click()
    other_row = page.locator(f'tr[data-prediction-id="{other["id"]}"]')
    expect(other_row.get_by_role("button", name="Not delayed", exact=True)).to_be_visible()
    sent = api.post(
        f"/api/predictions/{other['id']}/feedback", json={"label": 1}, headers=deployment.admin
    )
    assert sent.status_code == 200
    other_row.get_by_role("button", name="Not delayed", exact=True).click()
    expect(other_row.locator(".outcome-known")).to_have_text("Delayed")
    expect(other_row.get_by_role("alert")).to_be_visible()


def test_history_filters_and_pages(page, deployment, api) -> None:
    response = api.post("/api/predictions", json={"requests": deployment.requests[:25]})
    assert response.status_code == 200, response.text
    total = api.get("/api/predictions", params={"limit": 1}).json()["total"]
    assert total > 20
    open_page(page, "history")
    count = page.locator(".count")
    expect(count).to_have_text(f"Showing 1–20 of {total}")
    expect(page.locator("tr[data-prediction-id]")).to_have_count(20)
    first_page = page.locator("tr[data-prediction-id]").first.get_attribute("data-prediction-id")

    page.get_by_role("button", name="Older →").click()
    expect(count).to_have_text(f"Showing 21–{min(40, total)} of {total}")
    expect(page.get_by_role("button", name="← Newer")).to_be_enabled()
    page.get_by_role("button", name="← Newer").click()
    expect(count).to_have_text(f"Showing 1–20 of {total}")
    first = page.locator("tr[data-prediction-id]").first
    expect(first).to_have_attribute("data-prediction-id", first_page or "")

    champion = str(deployment.versions["champion"])
    page.get_by_label("Model version", exact=True).fill(champion)
    page.get_by_label("Slot", exact=True).select_option("stable")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(count).to_contain_text(f"of {total}")
    page.get_by_label("Slot", exact=True).select_option("canary")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("main").get_by_role("status")).to_have_text(
        "No predictions match these filters."
    )

    # A time range: from a minute ahead of now there is nothing; up to then, everything.
    page.get_by_role("button", name="Clear", exact=True).click()
    expect(count).to_have_text(f"Showing 1–20 of {total}")
    ahead = page.evaluate(
        "() => { const d = new Date(Date.now() + 60000 - new Date().getTimezoneOffset() * 60000);"
        " return d.toISOString().slice(0, 16); }"
    )
    page.get_by_label("From", exact=True).fill(ahead)
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_role("main").get_by_role("status")).to_have_text(
        "No predictions match these filters."
    )
    page.get_by_label("From", exact=True).fill("")
    page.get_by_label("Until", exact=True).fill(ahead)
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(count).to_have_text(f"Showing 1–20 of {total}")


def test_the_models_page_deploys_a_canary_and_shows_the_split(
    page, deployment, api, tmp_path
) -> None:
    champion, candidate = deployment.versions["champion"], deployment.versions["candidate"]
    open_page(page, "models")
    save_token(page, deployment.token)
    expect(page.locator('[data-slot="stable"]')).to_have_text(f"Stable v{champion} 100 % healthy")
    expect(page.locator('[data-slot="canary"]')).to_have_count(0)
    expect(page.locator(f'tr[data-version="{champion}"] .stage')).to_have_text("champion")
    expect(page.locator(f'tr[data-version="{candidate}"] .stage')).to_have_text("candidate")
    expect(page.locator(f'tr[data-version="{champion}"]')).to_contain_text("roc_auc")

    page.get_by_label("Version", exact=True).select_option(str(candidate))
    page.get_by_label("Traffic to the canary (%)", exact=True).fill("30")
    page.get_by_label("Reason", exact=True).fill("browser test")
    try:
        page.get_by_role("button", name="Deploy canary").click()
        canary = page.locator('[data-slot="canary"]')
        expect(canary).to_have_text(f"Canary v{candidate} 30 % healthy", timeout=90_000)
        stable_weight = api.get("/api/rollout").json()["stable"]["weight"]
        expect(page.locator('[data-slot="stable"]')).to_contain_text(f"{stable_weight} %")
        split = page.get_by_role(
            "img",
            name=f"Traffic split: stable v{champion} {stable_weight} %, canary v{candidate} 30 %",
        )
        expect(split).to_be_visible()
        assert split.evaluate("canvas => Boolean(window.Chart.getChart(canvas))")

        # A decision of the canary analysis shows in the timeline with its reason.
        decision = deployment.manager.analyze(apply=False)
        page.reload()
        timeline = page.locator(".timeline li").first
        expect(timeline).to_contain_text(decision.action.title())
        expect(timeline).to_contain_text(decision.reason)
        page.screenshot(path=tmp_path / "models.png", full_page=True)

        page.get_by_label("Reason for promoting or rolling back", exact=True).fill("test over")
        page.get_by_role("button", name="Roll back").click()
        expect(page.locator('[data-slot="canary"]')).to_have_count(0, timeout=60_000)
        expect(page.locator(f'tr[data-version="{candidate}"] .stage')).to_have_text("rejected")
    finally:
        if api.get("/api/rollout").json()["canary"] is not None:
            api.post(
                "/api/rollout/rollback", json={"reason": "test cleanup"}, headers=deployment.admin
            )


def test_monitoring_says_when_it_has_no_reports_then_shows_a_real_pass(
    page, deployment, api, tmp_path
) -> None:
    open_page(page, "monitoring")
    expect(page.get_by_role("main").get_by_role("status")).to_contain_text(
        "Monitoring has not produced reports yet"
    )
    page.screenshot(path=tmp_path / "monitoring-empty.png", full_page=True)

    # Real traffic through the app: a batch of real flights (their week), their outcomes,
    # and one flight a week later, which completes that week; then a monitoring pass.
    flights = deployment.requests[:60]
    answered = api.post("/api/predictions", json={"requests": flights}).json()["predictions"]
    for i, prediction in enumerate(answered[:40]):
        url = f"/api/predictions/{prediction['id']}/feedback"
        api.post(url, json={"label": int(i % 3 == 0)}, headers=deployment.admin).raise_for_status()
    later = deployment.requests[0] | {"scheduled_departure": "2013-01-21T09:00:00-05:00"}
    api.post("/api/predictions", json={"request": later}).raise_for_status()
    settings = deployment.settings.model_copy(
        update={"monitoring": MonitoringSettings(min_rows=20, min_labelled=20)}
    )
    (week,) = monitor(settings).windows
    assert week["window"] == "2013-01-07_2013-01-14" and week["labelled"] >= 40

    page.reload()
    row = page.locator(f'tr[data-window="{week["window"]}"]')
    expect(row).to_contain_text(str(week["rows"]))
    expect(row.get_by_role("link", name="window")).to_have_attribute(
        "href", f"/reports/{week['window']}.html"
    )
    expect(row.get_by_role("link", name="drift (Evidently)")).to_have_attribute(
        "href", f"/reports/{week['window']}-drift.html"
    )
    expect(row.locator(".auc")).to_contain_text(f"{week['quality']['roc_auc']:.3f}")
    expect(
        page.get_by_role("img", name=re.compile("ROC-AUC and drift share over 1 window"))
    ).to_be_visible()
    drift = page.locator("table.drift")
    expect(drift.get_by_role("rowheader", name="Temp", exact=True)).to_be_visible()
    page.screenshot(path=tmp_path / "monitoring.png", full_page=True)
    assert api.get(f"/reports/{week['window']}.html").status_code == 200


def test_every_page_fits_a_phone_and_labels_every_input(phone, deployment, api, tmp_path) -> None:
    predict(api, deployment.requests[3])  # History has a row to lay out
    for name in PAGES:
        open_page(phone, name)
        if name == "predict":
            fill_request(phone, deployment.requests[3])
            phone.get_by_role("button", name="Predict", exact=True).click()
            expect(phone.locator(".probability-value")).to_be_visible()
        if name == "history":
            expect(phone.locator("tr[data-prediction-id]").first).to_be_visible()
        if name == "models":
            expect(phone.locator('[data-slot="stable"]')).to_be_visible()
        width, viewport = phone.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert width <= viewport, f"#/{name} scrolls sideways at 390 px: {width} > {viewport}"

        controls = phone.locator("input, select, textarea")
        assert controls.count() > 0
        for index in range(controls.count()):
            control = controls.nth(index)
            text = control.evaluate("el => el.labels?.[0]?.textContent.trim() ?? ''")
            assert text, f"#/{name}: no <label> for {control.evaluate('el => el.outerHTML')}"
            found = phone.get_by_label(text, exact=True)
            expect(found).to_have_count(1)
            assert found.evaluate("el => el.id") == control.evaluate("el => el.id")
        phone.screenshot(path=tmp_path / f"phone-{name}.png", full_page=True)


def test_the_pages_work_from_the_keyboard(page, deployment) -> None:
    open_page(page, "predict")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Models", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Models")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    assert page.url.endswith("#/models")

    # The prediction form from the keyboard alone: Tab from field to field, Enter submits.
    open_page(page, "predict")
    first = next(iter(deployment.requests[4]))
    page.get_by_label(label(first), exact=True).focus()
    for value in deployment.requests[4].values():
        page.keyboard.type(str(value))
        page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Predict", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".probability-value")).to_have_text(re.compile(r"^\d+\.\d %$"))


def test_the_api_docs_and_metrics_load_in_the_browser(page, deployment) -> None:
    # Swagger UI from the app itself (static/vendor/swagger-ui), not a CDN: it renders the
    # API's operations with no network beyond the app.
    docs = page.goto("/docs")
    assert docs is not None and docs.ok
    expect(page).to_have_title(re.compile(r"e2eai"))
    expect(page.locator(".opblock-summary-path", has_text="/api/predictions").first).to_be_visible()
    metrics = page.goto("/metrics")
    assert metrics is not None and metrics.ok
    expect(page.locator("body")).to_contain_text("e2eai_app_requests_total")
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Predict")
    assert page.url.endswith("/#/predict")
