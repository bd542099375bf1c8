"""Word-level tokenizer: regex words and punctuation for English, jieba for Chinese.

``\\w+|[^\\w\\s]`` splits English; any word that contains Chinese characters is cut further
by jieba. The vocabulary keeps the most frequent ``max_vocab`` words; the rest become
``<unk>``, as does a literal ``<unk>`` in the text (one unknown word, as WikiText means it).
A literal ``<eos>`` is ordinary text (``<`` ``eos`` ``>``; in pre-tokenised text, where
``<eos>`` ends each line, the word is unknown), never the end-of-document id.
Decoding re-joins words with spaces where English would have them.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from lmlab.errors import LmlabError
from lmlab.tokenize.base import EOS, UNK, Tokenizer

WORD_RE = re.compile(r"<unk>|\w+|[^\w\s]|\n")
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_NO_SPACE_BEFORE = set(".,!?;:)]}%'\"”’」』》，。！？；：、）")
_NO_SPACE_AFTER = set("([{“‘「『《（")

_jieba = None


def _jieba_cut(text: str) -> list[str]:
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        _jieba = jieba
    return _jieba.lcut(text, HMM=True)


def split_whitespace(text: str) -> Iterator[str]:
    """Pre-tokenised text (Penn Treebank style): words split on whitespace, ``<eos>`` after
    every line, as KenLM's ``lmplz`` and the PTB literature count them."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        for w in line.split():  # a literal "<eos>" is a word no vocabulary holds, not a line end
            yield UNK if w == EOS else w
        yield EOS


def split_words(
    text: str, lowercase: bool = False, newlines: bool = True, split: str = "regex"
) -> Iterator[str]:
    """The word and punctuation tokens of ``text`` (``"\\n"`` kept as a token if ``newlines``);
    ``split="whitespace"`` reads pre-tokenised text instead (see :func:`split_whitespace`)."""
    if lowercase:
        text = text.lower()
    if split == "whitespace":
        yield from split_whitespace(text)
        return
    for m in WORD_RE.finditer(text):
        w = m.group()
        if w == "\n":
            if newlines:
                yield w
        elif _CJK_RE.search(w):
            yield from _jieba_cut(w)
        else:
            yield w


# Chinese/Japanese script, CJK punctuation (、。「」…) and full-width forms (，：！．):
# text in these scripts has no spaces between words, nor around its punctuation.
_NO_SPACE_SCRIPT_RE = re.compile(
    r"[\u2e80-\u9fff\uf900-\ufaff\ufe10-\ufe1f\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0002ffff]"
)


def _is_cjk(c: str) -> bool:
    return bool(_NO_SPACE_SCRIPT_RE.match(c))


def join_words(words: list[str]) -> str:
    """Inverse of :func:`split_words` up to spacing: spaces between English words only.
    Chinese has none, neither beside its characters nor around punctuation written among
    them (``八戒道：“我说你也！”`` and ``一声——好`` come back as they were)."""
    out: list[str] = []
    prev = ""

    def first_word_cjk(start: int) -> bool:  # a line's script, for punctuation that opens it
        for w in words[start:]:
            if w == "\n":
                return False
            if w[0].isalnum() or w[0] == "_":
                return _is_cjk(w[0])
        return False

    cjk_context = first_word_cjk(0)  # whether the last word was Chinese (or Japanese)
    for k, w in enumerate(words):
        punct = not (w[0].isalnum() or w[0] == "_")
        if out and w != "\n" and prev != "\n":
            space = not (
                w[0] in _NO_SPACE_BEFORE
                or prev[-1] in _NO_SPACE_AFTER
                or _is_cjk(w[0])
                or _is_cjk(prev[-1])
                or (cjk_context and (punct or not (prev[-1].isalnum() or prev[-1] == "_")))
            )
            if space:
                out.append(" ")
        out.append(w)
        if w == "\n":
            cjk_context = first_word_cjk(k + 1)
        elif not punct:
            cjk_context = _is_cjk(w[0])
        prev = w
    return "".join(out)


class WordTokenizer(Tokenizer):
    kind = "word"

    def __init__(
        self,
        words: list[str],
        lowercase: bool = False,
        newlines: bool = True,
        specials: tuple[str, ...] = (EOS, UNK),
        split: str = "regex",
    ) -> None:
        if split not in ("regex", "whitespace"):
            raise LmlabError(f"word tokenizer split {split!r} unknown; use 'regex' or 'whitespace'")
        self.split = split
        self.specials = list(specials)
        self.words = list(words)
        self.lowercase = lowercase
        self.newlines = newlines
        self._itos = self.specials + self.words
        self._stoi = {w: i for i, w in enumerate(self._itos)}
        self._unk = self._stoi[UNK]

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        max_vocab: int | None = 10000,
        min_count: int = 1,
        lowercase: bool = False,
        newlines: bool = True,
        split: str = "regex",
    ) -> WordTokenizer:
        """Keep the ``max_vocab`` most frequent words seen at least ``min_count`` times."""
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(split_words(t, lowercase, newlines, split))
        # Ties broken alphabetically so the vocabulary does not depend on input order.
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        words = [w for w, c in ranked if c >= min_count and w not in (EOS, UNK)]
        return cls(words[:max_vocab], lowercase, newlines, split=split)

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    @property
    def special_tokens(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.specials)}

    @property
    def unk_id(self) -> int:
        return self._unk

    def tokens(self, text: str) -> list[str]:
        return list(split_words(text, self.lowercase, self.newlines, self.split))

    def encode(self, text: str) -> list[int]:
        get, unk = self._stoi.get, self._unk
        return [get(w, unk) for w in split_words(text, self.lowercase, self.newlines, self.split)]

    def encode_array(self, text: str) -> np.ndarray:
        return np.fromiter(self.encode(text), dtype=np.int64)

    def encode_unknowns(self, text: str) -> tuple[np.ndarray, list[str]]:
        """``encode_array(text)`` and the words behind its ``<unk>`` ids, in order (an
        evaluation charges their spelling)."""
        get, unk = self._stoi.get, self._unk
        ids: list[int] = []
        unknown: list[str] = []
        for w in split_words(text, self.lowercase, self.newlines, self.split):
            i = get(w, unk)
            if i == unk:
                unknown.append(w)
            ids.append(i)
        return np.asarray(ids, dtype=np.int64), unknown

    def decode(self, ids: Any) -> str:
        itos = self._itos
        pieces = [itos[i] for i in np.asarray(ids).reshape(-1).tolist() if 0 <= i < len(itos)]
        if self.split == "whitespace":  # one line per sentence, words joined by spaces
            out, line = [], []
            for p in pieces:
                if p == EOS:
                    out.append(" ".join(line) + "\n")
                    line = []
                else:
                    line.append(p)
            return "".join(out) + " ".join(line)
        return join_words(pieces)

    def id_to_piece(self, i: int) -> str:
        return self._itos[i]

    @property
    def eos_ends_document(self) -> bool:
        return self.split != "whitespace"  # there, <eos> ends every line

    def to_dict(self) -> dict[str, Any]:
        return {
            "specials": self.specials,
            "lowercase": self.lowercase,
            "newlines": self.newlines,
            "split": self.split,
            "words": self.words,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordTokenizer:
        return cls(
            list(data["words"]),
            bool(data["lowercase"]),
            bool(data["newlines"]),
            tuple(data["specials"]),
            split=data.get("split", "regex"),
        )
