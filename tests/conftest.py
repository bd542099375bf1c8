"""Shared test fixtures: the public data folder beside the project, tiny corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests with a fixed seed (a red CI must be reproducible); locally
# every run explores new examples.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

from shared_data import SHARED_DATA, shared_file  # noqa: E402,F401  (tests/ is on sys.path)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """About 40 kB of real English text (the start of The Time Machine, or a fallback)."""
    src = SHARED_DATA / "timemachine" / "timemachine.txt"
    if src.exists():
        text = src.read_text(encoding="utf-8")[:40000]
    else:
        from lmlab.data.builtin import builtin_files

        text = builtin_files("shakespeare-sonnets")[0].read_text(encoding="utf-8")[:40000]
    p = tmp_path / "corpus.txt"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def local_http(tmp_path: Path):
    """A static HTTP server on loopback serving ``tmp_path / "www"``: (base URL, folder)."""
    import http.server
    import threading
    from functools import partial

    www = tmp_path / "www"
    www.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    httpd.shutdown()
