"""Pre-tokenised corpora (Penn Treebank style): words split on whitespace, one sentence a line.

Mikolov's PTB files are already tokenised (``n't``, ``<unk>``, ``N``), so the regex word
tokenizer would cut them differently from every published result. These helpers build a
:class:`~lmlab.tokenize.word.WordTokenizer` whose vocabulary is exactly the corpus's words
(a literal ``<unk>`` maps onto lmlab's ``<unk>`` id) and encode text by whitespace, each line
ending in ``<eos>``: the convention of KenLM's ``lmplz`` and of the PTB literature.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lmlab.errors import LmlabError
from lmlab.tokenize.base import EOS, UNK
from lmlab.tokenize.word import WordTokenizer


def read_text(path: str | Path) -> str:
    """A UTF-8 corpus file, with a one-line error when it is missing or not text."""
    p = Path(path)
    if not p.is_file():
        raise LmlabError(f"corpus file {p} not found; check the path")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise LmlabError(f"corpus file {p} is not UTF-8 text ({e.reason}); convert it first") from e


def whitespace_tokenizer(texts: Iterable[str]) -> WordTokenizer:
    """A word tokenizer over every whitespace-separated word of ``texts`` (most frequent first)."""
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(t.split())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return WordTokenizer(
        [w for w, _ in ranked if w not in (EOS, UNK)], newlines=True, split="whitespace"
    )


def encode_lines(tokenizer: WordTokenizer, text: str) -> np.ndarray:
    """Ids of ``text`` split on whitespace, ``<eos>`` after every line (blank lines too)."""
    if tokenizer.split == "whitespace":
        return tokenizer.encode_array(text)
    stoi = {tokenizer.id_to_piece(i): i for i in range(tokenizer.vocab_size)}
    unk, eos = tokenizer.unk_id, tokenizer.eos_id
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: list[int] = []
    for line in lines:
        out.extend(stoi.get(w, unk) for w in line.split())
        out.append(eos)
    return np.asarray(out, dtype=np.int64)
