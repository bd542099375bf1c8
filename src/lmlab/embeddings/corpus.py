"""Corpora for embedding training: read text files, split them into words, encode once to disk.

Three ways to split text into words (``mode``):

* ``"text8"``: the classic word2vec preprocessing: Project Gutenberg header and footer removed,
  lower-cased, runs of ``a``-``z`` only (everything else is a separator);
* ``"words"``: :func:`lmlab.tokenize.word.split_words` (regex for English, jieba for Chinese),
  punctuation dropped;
* ``"chars"``: one token per non-space character (Chinese without segmentation).

:func:`encode_corpus` makes a single streaming pass: every word gets a provisional id (order of
first appearance), ids go to an ``int32`` file on disk and counts are kept per id. Training then
reads that file through a memmap, so the corpus never has to fit in memory and is tokenised only
once however many epochs follow. ``-1`` marks a sentence (line or document) boundary.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmlab.errors import LmlabError

MODES = ("text8", "words", "chars")
BREAK = -1  # sentence boundary marker in an encoded corpus
_PG_START = re.compile(r"\*\*\*\s*START OF (?:THE|THIS) PROJECT GUTENBERG[^\n]*\n")
_PG_END = re.compile(r"\*\*\*\s*END OF (?:THE|THIS) PROJECT GUTENBERG")
_TEXT8_RE = re.compile(r"[a-z]+")
_PUNCT_RE = re.compile(r"^[^\w]+$")
# Words of a line without CJK characters: split_words's tokens less punctuation and newlines
# (each of those is one non-word character), in one pass of the regex engine.
_PLAIN_WORDS_RE = re.compile(r"<unk>|\w+")
_NOT_WORD_OR_SPACE_RE = re.compile(r"[^\w\s]")
# The ASCII characters of \w and \s (\s as str.split and the regex read it), deleted by
# bytes.translate: an ASCII line is words and spaces only when nothing is left.
_ASCII_WORD_OR_SPACE = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_FLUSH_IDS = 1 << 22  # ids buffered before a write to disk


def strip_gutenberg(text: str) -> str:
    """The body of a Project Gutenberg book: what lies between ``*** START OF`` and ``*** END OF``."""
    m = _PG_START.search(text)
    if m:
        text = text[m.end() :]
    m = _PG_END.search(text)
    if m:
        text = text[: m.start()]
    return text


def text8_words(text: str) -> list[str]:
    """text8-style words: lower-cased runs of a-z (Gutenberg boilerplate removed first)."""
    return _TEXT8_RE.findall(strip_gutenberg(text).lower())


def list_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, directories (``*.txt`` inside, sorted) and ``builtin:NAME`` corpora."""
    files: list[Path] = []
    for p in paths:
        if str(p).startswith("builtin:"):
            from lmlab.data.builtin import builtin_files

            files.extend(builtin_files(str(p).split(":", 1)[1]))
            continue
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.txt") if q.is_file())
            if not found:
                raise LmlabError(f"directory {p} holds no .txt files; pass text files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise LmlabError(f"corpus path {p} not found; check the path")
    if not files:
        raise LmlabError("no corpus files given; pass at least one text file or directory")
    return files


def iter_sentences(
    files: Iterable[Path], mode: str = "words", lowercase: bool = True, max_len: int = 10_000
) -> Iterator[list[str]]:
    """Yield lists of words: pieces of at most ``max_len`` words of each document in ``text8``
    mode, else one per non-empty line. Files are read line by line (streamed)."""
    if mode not in MODES:
        raise LmlabError(f"unknown corpus mode {mode!r}; choose one of {', '.join(MODES)}")
    for f in files:
        lines = _file_lines(Path(f))
        if mode == "text8":
            yield from _text8_pieces(lines, max_len)
            continue
        for line in lines:
            words = _line_words(line, mode, lowercase)
            if words:
                yield words


def _file_lines(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 file, streamed; anything else is an error naming the file and the
    likely encoding (as every lmlab command reads text, :mod:`lmlab.data.sources`)."""
    from lmlab.data.sources import iter_file_text

    carry = ""
    for chunk in iter_file_text(path):
        *lines, carry = (carry + chunk).split("\n")
        for line in lines:
            yield line + "\n"
    if carry:
        yield carry


def _text8_pieces(
    lines: Iterable[str], max_len: int, header_lines: int = 2000
) -> Iterator[list[str]]:
    """Stream one document text8-style; a Gutenberg ``*** START OF`` within the first
    ``header_lines`` lines drops what came before it, ``*** END OF`` ends the document."""
    buf: list[str] = []
    for n, line in enumerate(lines):
        if n < header_lines and _PG_START.match(line.lstrip() + "\n"):
            buf = []
            continue
        if _PG_END.match(line.lstrip()):
            break
        buf += _TEXT8_RE.findall(line.lower())
        if n >= header_lines:
            while len(buf) >= max_len:
                yield buf[:max_len]
                buf = buf[max_len:]
    for i in range(0, len(buf), max_len):
        yield buf[i : i + max_len]


def _line_words(line: str, mode: str, lowercase: bool) -> list[str]:
    if lowercase:
        line = line.lower()
    if mode == "chars":
        return [c for c in line if not c.isspace()]
    if line.isascii():  # no CJK: one C pass decides between str.split and the regex
        if not line.encode("ascii").translate(None, _ASCII_WORD_OR_SPACE):
            return line.split()
        return _PLAIN_WORDS_RE.findall(line)
    from lmlab.tokenize.word import _CJK_RE, split_words

    if not _CJK_RE.search(line):
        if not _NOT_WORD_OR_SPACE_RE.search(line):  # words and spaces only (text8-style)
            return line.split()  # the same words as the regex, a third faster
        return _PLAIN_WORDS_RE.findall(line)
    return [w for w in split_words(line, newlines=False) if not _PUNCT_RE.match(w)]


@dataclass
class EncodedCorpus:
    """A corpus as provisional word ids on disk, with the words and their counts.

    ``ids_path`` holds ``int32`` ids in corpus order, ``-1`` between sentences.
    """

    ids_path: Path
    words: list[str]
    counts: np.ndarray  # int64, indexed by provisional id
    n_tokens: int
    _tmpdir: tempfile.TemporaryDirectory | None = None

    def ids(self) -> np.ndarray:
        """The encoded corpus as a read-only memmap (empty array for an empty corpus)."""
        if os.path.getsize(self.ids_path) == 0:
            return np.zeros(0, dtype=np.int32)
        return np.memmap(self.ids_path, dtype=np.int32, mode="r")

    def close(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def encode_corpus(
    sentences: Iterable[list[str]], workdir: str | os.PathLike | None = None
) -> EncodedCorpus:
    """One streaming pass: assign provisional ids, write them to disk, count words."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="lmlab-embed-")
        workdir = tmp.name
    path = Path(workdir) / "corpus.ids.int32"
    index: defaultdict[str, int] = defaultdict()
    index.default_factory = index.__len__  # a new word takes the next id
    lookup = index.__getitem__
    n_tokens = 0
    pending: list[np.ndarray] = []
    n_pending = 0
    brk = np.array([BREAK], dtype=np.int32)
    with open(path, "wb") as out:
        for words in sentences:
            if not words:
                continue
            ids = np.fromiter(map(lookup, words), np.int32, len(words))
            pending += [ids, brk]
            n_pending += len(ids) + 1
            n_tokens += len(words)
            if n_pending >= _FLUSH_IDS:
                out.write(np.concatenate(pending).tobytes())
                pending, n_pending = [], 0
        if pending:
            out.write(np.concatenate(pending).tobytes())
    corpus = EncodedCorpus(path, list(index), np.zeros(len(index), np.int64), n_tokens, tmp)
    ids = corpus.ids()
    for start in range(0, len(ids), _FLUSH_IDS):
        block = np.asarray(ids[start : start + _FLUSH_IDS])
        corpus.counts += np.bincount(block[block >= 0], minlength=len(index))
    return corpus
