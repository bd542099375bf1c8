from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest

from lmlab.data.download import download
from lmlab.errors import LmlabError


@pytest.fixture
def server(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "corpus.txt").write_text("hello corpus\n" * 100, encoding="utf-8")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_checks_hash(tmp_path, server) -> None:
    body = ("hello corpus\n" * 100).encode()
    good = hashlib.sha256(body).hexdigest()
    path = download(f"{server}/corpus.txt", good, tmp_path / "cache")
    assert path.read_bytes() == body
    with pytest.raises(LmlabError, match="expected"):
        download(f"{server}/corpus.txt", "0" * 64, tmp_path / "other")
    assert not list((tmp_path / "other").glob("*"))  # nothing half-written left behind
    with pytest.raises(LmlabError, match="cannot download"):
        download(f"{server}/missing.txt", good, tmp_path / "cache2")
    with pytest.raises(LmlabError, match="64 hexadecimal"):
        download(f"{server}/corpus.txt", "abc", tmp_path / "cache")
