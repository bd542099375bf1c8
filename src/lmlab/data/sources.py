"""Read a user's text: files, folders, globs, JSONL fields and built-in corpora.

Text is decoded as UTF-8 (a BOM is dropped, CRLF and CR become LF). Anything that is not
UTF-8 is an error naming the file and the byte offset. Large files are read in chunks, so
a corpus never has to fit in memory.
"""

from __future__ import annotations

import codecs
import contextlib
import glob
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lmlab.errors import LmlabError

CHUNK_BYTES = 8 << 20
TEXT_SUFFIXES = {".txt", ".text", ".md", ".jsonl", ".json", ".csv", ".tsv", ""}


@dataclass(frozen=True)
class Source:
    """One input file, or one JSONL file read through a field."""

    path: Path
    jsonl_field: str | None = None

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def resolve_sources(specs: list[str], jsonl_field: str | None = None) -> list[Source]:
    """Expand ``specs`` (files, folders, globs, ``builtin:NAME``) into a sorted file list."""
    from lmlab.data.builtin import builtin_files

    if not specs:
        raise LmlabError("no corpus given; pass --corpus FILE|FOLDER|GLOB|builtin:NAME")
    out: list[Source] = []
    for spec in specs:
        if spec.startswith("builtin:"):
            out.extend(Source(p) for p in builtin_files(spec.split(":", 1)[1]))
            continue
        p = Path(spec).expanduser()
        if p.is_dir():
            files = sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES and not f.name.startswith(".")
            )
            if not files:
                raise LmlabError(f"folder {p} holds no text files (.txt, .md, .jsonl, ...)")
        elif p.is_file():
            files = [p]
        elif glob.has_magic(spec):
            files = sorted(
                Path(f)
                for f in glob.glob(os.path.expanduser(spec), recursive=True)
                if Path(f).is_file()
            )
            if not files:
                raise LmlabError(f"pattern {spec!r} matches no files")
        else:
            raise LmlabError(f"corpus file {spec} not found; check the path")
        for f in files:
            field = jsonl_field if f.suffix.lower() in (".jsonl", ".json") or jsonl_field else None
            out.append(Source(f, field if jsonl_field else None))
    return out


def _decode_error(path: Path, offset: int, exc: UnicodeDecodeError) -> LmlabError:
    pos = offset + exc.start
    where = f"{path} is not UTF-8 text (invalid byte 0x{exc.object[exc.start]:02x} at byte offset {pos})"
    guess = None
    try:
        with open(path, "rb") as f:
            guess = guess_encoding(f.read(64 * 1024))  # the start, then around the bad byte
            if guess is None and pos > 32 * 1024:
                f.seek((pos - 32 * 1024) & ~1)
                guess = guess_encoding(f.read(64 * 1024))
    except OSError:
        pass
    if guess == "binary":
        return LmlabError(f"{where}; it looks like a binary file, not text: pass a text file")
    if guess is None:
        return LmlabError(
            f"{where}; find its encoding (e.g. file -i {path}) and convert it to UTF-8 with iconv"
        )
    return LmlabError(
        f"{where}; it looks like {guess}: convert it with iconv -f {guess} -t UTF-8 {path} > out.txt"
    )


def _share(text: str, ok) -> float:
    """The share of ``text``'s non-ASCII characters for which ``ok(c)`` holds."""
    wide = [c for c in text if ord(c) > 127]
    return sum(map(ok, wide)) / len(wide) if wide else 0.0


def _in(lo: int, hi: int):
    return lambda c: lo <= ord(c) <= hi


def _encodable(codec: str):
    def ok(c: str) -> bool:
        try:
            c.encode(codec)
        except UnicodeEncodeError:
            return False
        return True

    return ok


def _cjk(c: str) -> bool:
    return 0x4E00 <= ord(c) <= 0x9FFF or 0x3000 <= ord(c) <= 0x30FF or 0xFF00 <= ord(c) <= 0xFFEF


# (name for iconv, Python codec, test of a plausible decoded character, share required)
_CANDIDATES = [
    ("EUC-KR", "euc_kr", _in(0xAC00, 0xD7A3), 0.9),  # Hangul (before GB: same byte ranges)
    ("GB18030", "gb18030", _encodable("gb2312"), 0.9),  # common simplified Chinese
    ("BIG5", "big5", _cjk, 0.9),
    ("SHIFT_JIS", "shift_jis", _cjk, 0.9),
    ("WINDOWS-1252", "cp1252", lambda c: c.isalpha() or c in "’‘“”–—…€£°§©®·", 0.8),
]


def _text_like(text: str) -> float:
    """Share of ``text`` that is ASCII text or common Chinese/Japanese script."""
    good = sum(c.isascii() and (c.isprintable() or c in "\n\r\t") or _cjk(c) for c in text)
    return good / len(text) if text else 0.0


def guess_encoding(sample: bytes) -> str | None:
    """A likely encoding of bytes that are not UTF-8 (for the error's hint), ``sample``
    starting at an even file offset: UTF-16 by its BOM or by decoding best as text,
    ``"binary"`` for other data with zero bytes, else the first legacy encoding that
    decodes into plausible text; None if none does."""
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    scores = {}
    for name, codec in (("UTF-16LE", "utf_16_le"), ("UTF-16BE", "utf_16_be")) * (
        b"\x00" in sample  # a newline or any ASCII character has one
    ):
        with contextlib.suppress(UnicodeDecodeError):
            scores[name] = _text_like(codecs.getincrementaldecoder(codec)().decode(sample))
    best = max(scores, key=scores.get, default=None)
    if best is not None and scores[best] >= 0.95:
        return best
    if b"\x00" in sample:
        return "binary"
    for name, codec, plausible, share in _CANDIDATES:
        for skip in (0, 1):  # the sample may start inside a two-byte character
            try:
                text = codecs.getincrementaldecoder(codec)().decode(sample[skip:], final=False)
            except UnicodeDecodeError:
                continue
            if _share(text, plausible) >= share:
                return name
    return None


def iter_file_text(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """Yield the text of ``path`` in chunks of about ``chunk_bytes``, newline-normalised."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    first = True
    carry_cr = False
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise LmlabError(f"cannot read {path}: {e.strerror}") from e
    with f:
        while True:
            raw = f.read(chunk_bytes)
            final = not raw
            pending = len(decoder.getstate()[0])  # bytes of a split character held back
            try:
                text = decoder.decode(raw, final=final)
            except UnicodeDecodeError as e:
                raise _decode_error(path, offset - pending, e) from None
            offset += len(raw)
            if first and text:
                text = text.removeprefix("\ufeff")
                first = False
            if carry_cr:
                text = "\r" + text
                carry_cr = False
            if text.endswith("\r") and not final:
                text, carry_cr = text[:-1], True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text:
                yield text
            if final:
                return


def iter_jsonl_field(path: Path, field: str) -> Iterator[str]:
    """Yield ``record[field]`` from each line of a JSONL file (one document per record)."""
    buf = ""
    lineno = 0
    for chunk in iter_file_text(path):
        buf += chunk
        *lines, buf = buf.split("\n")
        for line in lines:
            lineno += 1
            yield from _jsonl_value(path, lineno, line, field)
    if buf.strip():
        yield from _jsonl_value(path, lineno + 1, buf, field)


def _jsonl_value(path: Path, lineno: int, line: str, field: str) -> Iterator[str]:
    if not line.strip():
        return
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise LmlabError(
            f"{path}:{lineno} is not valid JSON ({e.msg}); fix the line or drop --jsonl-field"
        ) from None
    if not isinstance(record, dict) or field not in record:
        raise LmlabError(f"{path}:{lineno} has no field {field!r}; check --jsonl-field")
    value = record[field]
    if not isinstance(value, str):
        raise LmlabError(f"{path}:{lineno}: field {field!r} is not a string")
    yield value.replace("\r\n", "\n")


def iter_documents(sources: list[Source]) -> Iterator[Iterator[str]]:
    """For each document, an iterator over its text chunks (a file, or one JSONL record)."""
    for src in sources:
        if src.jsonl_field:
            for text in iter_jsonl_field(src.path, src.jsonl_field):
                yield iter([text])
        else:
            yield iter_file_text(src.path)
