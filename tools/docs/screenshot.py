"""Take the playground screenshot of the docs (docs/img/playground.png) from a real server.

Starts ``lmlab serve`` on a run, opens the playground in Debian's Chromium through
Playwright (no browser download), generates a completion with a fixed seed, points at one
token so its probability and alternatives show, and saves the page as PNG:

    python tools/docs/screenshot.py                      # SmolLM2 (make install-chat)
    python tools/docs/screenshot.py --run runs/demo      # or any run, e.g. after `make demo`

Needs the test extra (playwright) and the ``chromium`` package (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < seconds:
        if server.poll() is not None:
            sys.exit(f"lmlab serve exited with {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"no answer from {url} after {seconds:.0f} s")


def shoot(
    run: str, out: Path, prompt: str, tokens: int, seed: int, width: int, height: int
) -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    lmlab = Path(sys.executable).parent / "lmlab"
    server = subprocess.Popen(
        [str(lmlab), "serve", "--run", run, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/health", server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(120_000)
            page.goto(base + "/")
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            page.fill("#prompt", prompt)
            page.fill("#max_tokens", str(tokens))
            page.fill("#temperature", "0.8")
            page.fill("#top_k", "40")
            page.fill("#seed", str(seed))
            page.click("#generate")
            page.wait_for_function("document.querySelectorAll('#output .tok').length > 0")
            page.wait_for_selector("#generate:not([disabled])")
            n = page.locator("#output .tok").count()
            page.hover(f"#output .tok >> nth={min(n - 1, max(0, n // 3))}")
            page.wait_for_selector("#tooltip:not(.hidden)")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"screenshot: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="builtin:smollm2", help="run or model to serve")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "playground.png")
    ap.add_argument("--prompt", default="The three primary colours are")
    ap.add_argument("--tokens", type=int, default=60)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=560)
    a = ap.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} not found: apt-get install chromium")
    shoot(a.run, a.out, a.prompt, a.tokens, a.seed, a.width, a.height)


if __name__ == "__main__":
    main()
