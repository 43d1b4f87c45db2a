"""The Predict and History pages of multi-class tasks in a real browser: pip ``playwright``
driving Debian ``chromium`` headless against real deployments (tests/class_app_fixtures.py).

A message typed into the text box is answered with its three class probabilities as bars and
its word pieces highlighted; a real Fashion-MNIST photo chosen with the file picker is
previewed, answered with ten class bars and its saliency map drawn over it. History then shows
the message or the photo's thumbnail with the predicted class, and records the actual class
(admin token). Each test saves a screenshot in its ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from class_app_fixtures import (
    ClassAppDeployment,
    encoded,
    fashion_pixels,
    start_class_app,
)
from fashion_subset import INSTALLED, NOT_INSTALLED
from playwright.sync_api import Browser, Page, expect, sync_playwright

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
MESSAGE = "my flight was cancelled and nobody answers the phone"


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


@pytest.fixture(scope="module")
def triage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClassAppDeployment]:
    deployment = start_class_app("support-triage", tmp_path_factory.mktemp("triage-ui"))
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClassAppDeployment]:
    if not INSTALLED:
        pytest.skip(NOT_INSTALLED)
    deployment = start_class_app("fashion", tmp_path_factory.mktemp("fashion-ui"))
    try:
        yield deployment
    finally:
        deployment.stop()


def _tab(browser: Browser, deployment: ClassAppDeployment, **context: Any) -> Iterator[Page]:
    """A fresh tab on the app; fails the test on any uncaught JS error."""
    ctx = browser.new_context(
        base_url=deployment.url, viewport={"width": 1280, "height": 900}, **context
    )
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
def text_page(browser: Browser, triage: ClassAppDeployment) -> Iterator[Page]:
    yield from _tab(browser, triage)


@pytest.fixture
def photo_page(browser: Browser, fashion: ClassAppDeployment) -> Iterator[Page]:
    yield from _tab(browser, fashion)


def _save_token(page: Page, token: str) -> None:
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#admin-token-status")).to_have_text("Saved for this tab.")


def test_a_message_typed_in_the_text_box_is_answered_with_its_words_highlighted(
    text_page: Page, triage: ClassAppDeployment, tmp_path: Path
) -> None:
    page = text_page
    page.goto("/#/predict")
    expect(page.get_by_role("heading", level=1)).to_have_text("Predict")
    box = page.get_by_label("Text", exact=True)
    expect(box).to_have_attribute("maxlength", "280")
    # Nothing typed: the browser's own check, next to the box.
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#field-text-error")).to_have_text("Write a message.")
    box.fill(MESSAGE)
    expect(page.locator("#field-text-count")).to_have_text(f"{len(MESSAGE)} / 280 characters")
    page.get_by_role("button", name="Predict").click()

    result = page.locator("#result")
    expect(result.get_by_role("heading", name="Result")).to_be_visible()
    bars = result.locator(".class-probability")
    expect(bars).to_have_count(3)
    expect(bars.nth(0)).to_contain_text("negative")
    predicted = result.locator(".predicted-class").inner_text()
    assert predicted in {"negative", "neutral", "positive"}
    expect(result.locator(".class-predicted .class-name")).to_have_text(predicted)
    tokens = result.locator("mark.piece")
    assert tokens.count() >= 9
    expect(tokens.nth(0)).to_have_text("my")
    expect(tokens.nth(1)).to_have_text("flight")
    page.screenshot(path=str(tmp_path / "predict-text.png"), full_page=True)

    # History shows the message and its class; the actual class is recorded by choosing it.
    page.goto("/#/history")
    row = page.locator("tr[data-prediction-id]").first
    expect(row.locator(".request-message")).to_have_text(MESSAGE)
    expect(row.locator(".predicted-class-cell")).to_have_text(predicted)
    _save_token(page, triage.token)
    row.get_by_label("Actual class", exact=False).select_option("neutral")
    row.get_by_role("button", name="Record").click()
    expect(row.locator(".outcome-known")).to_have_text("neutral")
    page.screenshot(path=str(tmp_path / "history-text.png"), full_page=True)


def test_a_photo_chosen_with_the_file_picker_is_answered_with_its_saliency_map(
    photo_page: Page, fashion: ClassAppDeployment, tmp_path: Path
) -> None:
    page = photo_page
    photo = tmp_path / "ankle-boot.png"
    photo.write_bytes(encoded(fashion_pixels(1)[0]))  # the first test image: an ankle boot
    page.goto("/#/predict")
    expect(page.get_by_role("heading", level=1)).to_have_text("Predict")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#field-image-error")).to_have_text("Choose a photo.")
    page.get_by_label("Image", exact=True).set_input_files(str(photo))
    preview = page.locator("img.photo-preview")
    expect(preview).to_be_visible()
    expect(preview).to_have_attribute("alt", "The chosen photo, ankle-boot.png")
    page.get_by_role("button", name="Predict").click()

    result = page.locator("#result")
    expect(result.locator(".class-probability")).to_have_count(10)
    expect(result.locator(".class-predicted")).to_have_count(1)
    canvas = result.get_by_role("img", name="Saliency map over the photo")
    expect(canvas).to_be_visible()
    expect(canvas).to_have_attribute("data-drawn", "photo")  # drawn over the photo itself
    # The drawing is the photo (a light boot on black) with squares laid over it: not blank.
    colours = page.evaluate(
        """() => {
          const c = document.querySelector("canvas.saliency");
          const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          const seen = new Set();
          for (let i = 0; i < data.length; i += 4 * 97) seen.add(data.slice(i, i + 3).join());
          return seen.size;
        }"""
    )
    assert colours > 10
    expect(result.locator(".explanation .hint").last).to_contain_text("square")
    page.screenshot(path=str(tmp_path / "predict-image.png"), full_page=True)

    page.goto("/#/history")
    row = page.locator("tr[data-prediction-id]").first
    thumbnail = row.locator("img.thumbnail")
    expect(thumbnail).to_be_visible()
    expect(thumbnail).to_have_attribute("alt", "The photo (PNG, 28×28 pixels)")
    assert page.evaluate("document.querySelector('img.thumbnail').naturalWidth") == 28
    page.screenshot(path=str(tmp_path / "history-image.png"), full_page=True)
