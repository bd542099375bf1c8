"""Read a user's text: files, folders, globs, JSONL fields and built-in corpora.

Text is decoded as UTF-8 (a BOM is dropped, CRLF and CR become LF). Anything that is not
UTF-8 is an error naming the file and the byte offset. Large files are read in chunks, so
a corpus never has to fit in memory.
"""

from __future__ import annotations

import codecs
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
    return LmlabError(
        f"{path} is not UTF-8 text (invalid byte 0x{exc.object[exc.start]:02x} at byte offset {pos}); "
        "convert it to UTF-8, e.g. iconv -f GB18030 -t UTF-8"
    )


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
