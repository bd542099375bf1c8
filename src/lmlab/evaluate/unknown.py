"""Unknown words: their share of a scored text, and what spelling them out costs.

A word model predicts ``<unk>`` for every word outside its vocabulary, so its loss never
pays for the letters of the rarest words, which char and BPE models must predict. To keep
bits per byte comparable across tokenizers, each ``<unk>`` is also charged the bits of
spelling its word: one bit says whether the text holds a literal ``<unk>`` (nothing more to
pay) or a word to spell, then each character costs ``-log2 q(c)`` under a unigram over the
characters of the vocabulary's words (add-one smoothed, with an end-of-word symbol), and a
character no vocabulary word has costs an escape plus 8 bits per UTF-8 byte. That is a real
code, so model plus speller could compress the text to the bits reported: bits per byte
stays an honest upper bound, for every tokenizer alike.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lmlab.errors import LmlabError
from lmlab.tokenize import UNK, Tokenizer, WordTokenizer

if TYPE_CHECKING:
    from lmlab.data.shards import Dataset

WARN_ABOVE = 0.01  # a share of <unk> above which results carry a warning


class SpellingCost:
    """Bits to spell a word: a character unigram of the vocabulary (see the module text)."""

    def __init__(self, words: Iterable[str]) -> None:
        counts: Counter[str] = Counter()
        n_words = 0
        for w in words:
            counts.update(w)
            n_words += 1
        total = sum(counts.values()) + len(counts) + n_words + 2  # +1 each; end; escape
        self._bits = {c: -math.log2((k + 1) / total) for c, k in counts.items()}
        self.end_bits = -math.log2((n_words + 1) / total)
        self.escape_bits = -math.log2(1 / total)

    def bits(self, word: str) -> float:
        """Bits of ``word``'s characters and its end (not the literal-or-spelled flag)."""
        out = self.end_bits
        for c in word:
            b = self._bits.get(c)
            out += b if b is not None else self.escape_bits + 8 * len(c.encode("utf-8", "replace"))
        return out


def unk_id(tok: Tokenizer) -> int | None:
    """The tokenizer's ``<unk>`` id, or None for kinds that spell everything (char, BPE)."""
    return tok.special_tokens.get(UNK)


def count_unk(tok: Tokenizer, ids: np.ndarray) -> int:
    unk = unk_id(tok)
    return 0 if unk is None else int(np.count_nonzero(np.asarray(ids) == unk))


def vocabulary_words(tok: Tokenizer) -> list[str]:
    """The ordinary words of a word tokenizer, most frequent first (none for other kinds)."""
    return list(getattr(tok, "words", []))


def spelling_bits(tok: Tokenizer, words: Sequence[str]) -> float:
    """Total bits charged for the words behind ``<unk>`` tokens (1 flag bit each, plus the
    spelling unless the text itself says ``<unk>``)."""
    speller = SpellingCost(vocabulary_words(tok))
    return float(len(words)) + sum(speller.bits(w) for w in words if w != UNK)


def estimated_spelling_bits(tok: Tokenizer, n_unk: int) -> float:
    """Bits for ``n_unk`` unknown words whose spelling is not at hand: each is charged the
    mean spelling of the rarest tenth of the vocabulary (the words most like unknown ones)."""
    words = vocabulary_words(tok)
    if n_unk == 0 or not words:
        return float(n_unk)
    speller = SpellingCost(words)
    rare = words[-max(1, len(words) // 10) :]
    return n_unk * (1.0 + sum(speller.bits(w) for w in rare) / len(rare))


def unk_warning(rate: float, what: str = "scored tokens") -> str | None:
    """A one-line warning when ``<unk>`` makes up more than 1% of ``what``, else None."""
    if rate <= WARN_ABOVE:
        return None
    return (
        f"warning: {rate:.2%} of the {what} are <unk> (over {WARN_ABOVE:.0%}); perplexity "
        "counts each as one word, so compare it only between models with this vocabulary"
    )


def validation_unknowns(data: Dataset) -> list[str] | None:
    """The words behind the ``<unk>`` ids of a prepared validation split, read again from
    the dataset's sources and cut where preparation cut them; None if they are gone or
    changed (the split's text itself is not kept)."""
    from lmlab.data.shards import _line_chunks
    from lmlab.data.sources import Source, iter_documents

    tok, meta = data.tokenizer, data.meta
    n_unk = count_unk(tok, data.val)
    if n_unk == 0 or not isinstance(tok, WordTokenizer):
        return []
    sources = []
    for spec in meta.sources:
        path, _, field = spec.rpartition("#") if not Path(spec).is_file() else (spec, "", "")
        if not Path(path).is_file():
            return None
        sources.append(Source(Path(path), field or None))
    split_at, pos = meta.train_chars, 0
    unknown: list[str] = []
    try:
        for doc in iter_documents(sources):
            for text in _line_chunks(doc):
                if pos + len(text) > split_at:  # as prepare_dataset cut it
                    unknown += tok.encode_unknowns(text[max(0, split_at - pos) :])[1]
                pos += len(text)
    except (LmlabError, OSError):
        return None
    if pos != meta.train_chars + meta.val_chars or len(unknown) != n_unk:
        return None
    return unknown


def validation_unk_charge(data: Dataset) -> tuple[int | None, float]:
    """The ``<unk>`` id of a dataset's tokenizer (None if it spells everything) and the bits
    charged per ``<unk>`` of its validation split: the mean spelling cost of the split's own
    unknown words (estimated as :func:`estimated_spelling_bits` when they cannot be read
    again). The trainer's ``val_bpb`` charges each scored ``<unk>`` this, so it is the
    figure ``lmlab eval`` reports, up to ``eval`` spelling each word exactly."""
    unk = unk_id(data.tokenizer)
    if unk is None:
        return None, 0.0
    words = validation_unknowns(data)
    if words:
        return unk, spelling_bits(data.tokenizer, words) / len(words)
    return unk, estimated_spelling_bits(data.tokenizer, 1)


def window_unk_count(
    tokens: np.ndarray, block: int, batch_size: int, max_batches: int | None, unk: int
) -> int:
    """How many of the targets that :func:`lmlab.evaluate.perplexity.window_loss` scores
    (the same windows) are ``<unk>``."""
    from lmlab.data.batches import eval_windows

    return sum(
        int((y == unk).sum()) for _, y in eval_windows(tokens, block, batch_size, max_batches)
    )
