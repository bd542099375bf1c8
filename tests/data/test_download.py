from __future__ import annotations

import hashlib

import pytest

from lmlab.data.download import download
from lmlab.errors import LmlabError


def test_download_checks_hash(tmp_path, local_http) -> None:
    server, www = local_http
    body = ("hello corpus\n" * 100).encode()
    (www / "corpus.txt").write_bytes(body)
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
