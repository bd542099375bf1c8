"""The web playground in headless Chromium (Playwright): generate, chat, hover, explore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _serve_helpers import API_KEY

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (install Debian's chromium package)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str, key: str | None = None):
    """A page at ``url`` (with the API key already stored if given) and its script errors."""
    pg = browser.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    if key:
        pg.add_init_script(f"localStorage.setItem('lmlab-api-key', {json.dumps(key)})")
    pg.goto(url)
    return pg, errors


@pytest.fixture(scope="module")
def page(browser, server):
    pg, errors = open_page(browser, server[0] + "/")
    yield pg
    pg.close()
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
    assert page.input_value("#max_tokens") == "64"  # the page's 100 brought within the cap
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


@pytest.mark.slow
def test_playground_colours_tokens_by_probability_and_clears_stale_errors(page) -> None:
    page.select_option("#model", "kn")  # an n-gram model: real, varied probabilities
    page.click("#tab-complete")
    page.fill("#prompt", "Shall I")
    page.fill("#max_tokens", "40")
    page.fill("#seed", "5")
    page.click("#generate")
    page.wait_for_selector("#generate:not([disabled])")
    spans = page.eval_on_selector_all(
        "#output .tok",
        "els => els.map(e => [Number(e.dataset.p), getComputedStyle(e).backgroundColor])",
    )
    assert spans and all(0 <= p <= 1 for p, _ in spans)

    # the colour follows the probability: from red (unlikely) to green (likely)
    def greenness(css: str) -> int:
        r, g, _ = (int(x) for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
        return g - r

    ranked = sorted(spans)
    assert ranked[-1][0] - ranked[0][0] > 0.3, ranked
    assert greenness(ranked[-1][1]) - greenness(ranked[0][1]) > 60
    shades = [greenness(c) for _, c in ranked]
    assert all(b >= a - 2 for a, b in zip(shades, shades[1:], strict=False))
    page.uncheck("#colour_tokens")
    plain = page.eval_on_selector_all(
        "#output .tok", "els => els.map(e => getComputedStyle(e).backgroundColor)"
    )
    assert set(plain) == {"rgba(0, 0, 0, 0)"}
    page.check("#colour_tokens")
    # an error (max tokens above the server's cap of 64) clears on a tab change and a model change
    page.fill("#max_tokens", "1000")
    page.click("#generate")
    page.wait_for_selector("#status.error")
    assert "at most 64" in page.inner_text("#status")
    page.click("#tab-chat")
    assert page.inner_text("#status") == ""
    page.click("#tab-complete")
    page.click("#generate")
    page.wait_for_selector("#status.error")
    page.select_option("#model", "lstm")
    assert page.inner_text("#status") == "" and not page.is_visible("#status.error")
    page.fill("#max_tokens", "12")


@pytest.mark.slow
def test_playground_layout_fonts_and_favicon(page, server) -> None:
    import httpx

    page.select_option("#model", "tiny")
    page.click("#tab-complete")
    # the "ignore end of document" box sits at the start of its label, centred on its text
    for box_id in ("ignore_eos", "colour_tokens"):
        box = page.locator(f"#{box_id}").bounding_box()
        text = page.locator(f"label:has(#{box_id}) span").bounding_box()
        label = page.locator(f"label:has(#{box_id})").bounding_box()
        assert abs((box["y"] + box["height"] / 2) - (text["y"] + text["height"] / 2)) <= 2
        assert box["x"] - label["x"] <= 2 and 0 <= text["x"] - (box["x"] + box["width"]) <= 12
    # CJK fallbacks in the font stacks
    fonts = page.evaluate("[document.body, document.querySelector('#output')]"
                          ".map(e => getComputedStyle(e).fontFamily)")  # fmt: skip
    for f in fonts:
        assert "Noto Sans CJK SC" in f and "PingFang SC" in f and "Microsoft YaHei" in f
    # a favicon, linked and at /favicon.ico
    href = page.get_attribute("link[rel=icon]", "href")
    for path in (href, "/favicon.ico"):
        r = httpx.get(server[0] + path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    # wide: sampling panel beside the prompt; 390 px: under it, as wide as the page allows
    aside, panel = page.locator("#controls"), page.locator("#panel-complete")
    assert aside.bounding_box()["x"] + aside.bounding_box()["width"] <= panel.bounding_box()["x"]
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        a, p = aside.bounding_box(), panel.bounding_box()
        assert a["y"] >= p["y"] + p["height"] and abs(a["width"] - p["width"]) <= 2
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        page.set_viewport_size({"width": 1280, "height": 720})


@pytest.fixture(scope="module")
def task_page(browser, task_server):
    pg, errors = open_page(browser, task_server[0] + "/", API_KEY)
    pg.wait_for_function("document.querySelectorAll('#model option').length === 4")
    yield pg
    pg.close()
    assert not errors, errors


@pytest.mark.slow
def test_playground_classify_tab_shows_label_probabilities(task_page, task_server) -> None:
    import httpx

    page = task_page
    page.select_option("#model", "sst")
    assert page.is_visible("#panel-classify") and not page.is_visible("#controls")
    assert page.is_disabled("#tab-complete") and "labels: 0, 1" in page.inner_text("#model-info")
    text = "a gorgeous , witty , moving film"
    page.fill("#cls-input", text)
    page.select_option("#cls-explain", "occlusion")
    page.click("#cls-go")
    page.wait_for_selector("#cls-results tr >> nth=1")
    rows = page.eval_on_selector_all(
        "#cls-results tr", "rs => rs.map(r => [r.cells[0].textContent, r.cells[2].textContent, "
        "r.querySelector('.bar').getBoundingClientRect().width])",
    )  # fmt: skip
    api = httpx.post(task_server[0] + "/v1/classify", json={"model": "sst", "input": text},
                     headers={"Authorization": f"Bearer {API_KEY}"}).json()["data"][0]  # fmt: skip
    want = sorted(api["probabilities"].items(), key=lambda kv: -kv[1])
    assert [r[0] for r in rows] == [k for k, _ in want]
    assert [r[1] for r in rows] == [f"{100 * v:.1f}%" for _, v in want]
    assert rows[0][2] >= rows[1][2]  # the bars' lengths follow the probabilities
    assert page.is_visible("#cls-explanation")
    assert page.locator("#cls-explanation .expl").count() == len(text.split())


@pytest.mark.slow
def test_playground_answer_tab_highlights_the_span(task_page) -> None:
    page = task_page
    page.select_option("#model", "reader")
    assert page.is_visible("#panel-qa")
    context = "Rollo was a Viking. He founded Normandy in 911. His son was William Longsword."
    page.fill("#qa-question", "Who was his son?")
    page.fill("#qa-context", context)
    page.click("#qa-go")
    page.wait_for_selector("#qa-view mark.answer")
    assert page.inner_text("#qa-view mark.answer") == "His son was William Longsword."
    assert page.inner_text("#qa-view") == context
    assert page.locator("#qa-answers tr").count() == 3
    page.click("#qa-answers tr >> nth=1")  # another answer: highlighted instead
    assert page.inner_text("#qa-view mark.answer") == page.inner_text(
        "#qa-answers tr >> nth=1 >> td >> nth=0"
    )
    # an error from the server (empty question) shows, and clears when the model changes
    page.fill("#qa-question", "")
    page.click("#qa-go")
    page.wait_for_selector("#status.error")
    assert "empty" in page.inner_text("#status")
    page.select_option("#model", "sst")
    assert page.inner_text("#status") == ""


@pytest.fixture(scope="module")
def translate_page(browser, translator, summarizer):
    from _serve_helpers import make_server

    srv, _ = make_server({"enzh": translator, "lcsts": summarizer})
    with srv:
        pg, errors = open_page(browser, srv.url + "/", key=API_KEY)
        yield pg, srv.url
        pg.close()
    assert not errors, errors


@pytest.mark.slow
def test_playground_translate_tab_shows_n_best(translate_page) -> None:
    import httpx

    page, url = translate_page
    page.wait_for_selector("#model option[value=enzh]", state="attached")
    page.select_option("#model", "enzh")
    assert page.is_visible("#panel-translate") and page.is_disabled("#tab-chat")
    assert "translation en-zh" in page.inner_text("#model-info")
    page.fill("#tr-input", "I like tea.\nWhere is the station?")
    page.fill("#tr-beam", "3")
    page.fill("#tr-nbest", "2")
    page.click("#tr-go")
    page.wait_for_selector("#tr-results tr >> nth=3")
    rows = page.eval_on_selector_all(
        "#tr-results tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    api = httpx.post(url + "/v1/translate", headers={"Authorization": f"Bearer {API_KEY}"},
                     json={"model": "enzh", "input": ["I like tea.", "Where is the station?"],
                           "beam": 3, "n_best": 2}).json()["data"]  # fmt: skip
    want = [[src if k == 0 else "", a["text"], f"{a['score']:.3f}"]
            for src, item in zip(["I like tea.", "Where is the station?"], api, strict=True)
            for k, a in enumerate(item["alternatives"])]  # fmt: skip
    assert rows == want
    assert "2 lines" in page.inner_text("#tr-stats")


@pytest.mark.slow
def test_playground_summarize_tab(translate_page) -> None:
    import httpx

    page, url = translate_page
    page.select_option("#model", "lcsts")
    assert page.is_visible("#panel-summarize") and page.is_disabled("#tab-translate")
    assert "summarisation, zh" in page.inner_text("#model-info")
    texts = ["今天北京的天气很好，很多人去公园散步。", "这家公司发布了新的手机。"]
    page.fill("#sum-input", "\n\n".join(texts))
    page.fill("#sum-beam", "2")
    page.click("#sum-go")
    page.wait_for_selector("#sum-results tr >> nth=1")
    rows = page.eval_on_selector_all(
        "#sum-results tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    api = httpx.post(url + "/v1/summarize", headers={"Authorization": f"Bearer {API_KEY}"},
                     json={"model": "lcsts", "input": texts, "beam": 2}).json()["data"]  # fmt: skip
    assert rows == [[t, item["text"], f"{item['score']:.3f}"]
                    for t, item in zip(texts, api, strict=True)]  # fmt: skip
    assert "2 texts" in page.inner_text("#sum-stats")
