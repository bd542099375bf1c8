"""The web playground in headless Chromium (Playwright): generate, chat, hover, explore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _serve_helpers import API_KEY

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def page(server):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (install Debian's chromium package)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page()
        pg.set_default_timeout(30_000)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server[0] + "/")
        yield pg
        browser.close()
        assert not errors, errors


@pytest.mark.slow
def test_playground_generates_streams_and_shows_probabilities(page) -> None:
    # the server wants a key: the page asks for it, then lists the models
    page.wait_for_selector("#key-box:not(.hidden)")
    page.fill("#api-key", API_KEY)
    page.dispatch_event("#api-key", "change")
    page.wait_for_function("document.querySelectorAll('#model option').length === 4")
    page.select_option("#model", "tiny")
    assert "transformer" in page.inner_text("#model-info")
    page.fill("#prompt", "Shall I compare thee")
    page.fill("#max_tokens", "20")
    page.fill("#seed", "3")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#output .tok').length > 0")
    page.wait_for_selector("#generate:not([disabled])")
    out = page.inner_text("#output")
    assert out.startswith("Shall I compare thee") and len(out) > len("Shall I compare thee")
    assert "20 tokens" in page.inner_text("#complete-stats")
    page.hover("#output .tok >> nth=0")
    page.wait_for_selector("#tooltip:not(.hidden)")
    tip = page.inner_text("#tooltip")
    assert "p = " in tip and tip.count("\n") >= 2  # the token and its alternatives
    # "ignore end of document" sends ignore_eos
    page.check("#ignore_eos")
    with page.expect_request("**/v1/completions") as sent:
        page.click("#generate")
    assert json.loads(sent.value.post_data)["ignore_eos"] is True
    page.wait_for_selector("#generate:not([disabled])")
    page.uncheck("#ignore_eos")


@pytest.mark.slow
def test_playground_chat_and_neighbour_explorer(page) -> None:
    page.click("#tab-chat")
    page.fill("#chat-input", "Hello")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-send:not([disabled])")
    page.wait_for_function("document.querySelectorAll('.msg.assistant').length === 1")
    assert page.inner_text(".msg.user .body") == "Hello"
    page.select_option("#model", "vec")
    assert page.is_visible("#panel-explore")
    page.fill("#nn-word", "king woman")
    page.fill("#nn-minus", "man")
    page.click("#nn-go")
    page.wait_for_selector("#nn-results tr")
    first = page.inner_text("#nn-results tr >> nth=0")
    assert first.startswith("queen")
    page.click("#nn-results a >> text=queen")
    page.wait_for_function("document.querySelector('#nn-word').value === 'queen'")
