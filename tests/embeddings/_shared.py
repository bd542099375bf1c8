"""Where the public data lives for these tests (``$LMLAB_SHARED_DATA`` or ``../shared/data``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from shared_data import shared_file as shared_path  # noqa: E402


@lru_cache(maxsize=1)
def _timemachine_corpus(path: str):
    from lmlab.embeddings.corpus import encode_corpus, iter_sentences

    return encode_corpus(iter_sentences([Path(path)], "words"))


def timemachine_corpus():
    """The Time Machine (32k words) encoded once per test session."""
    return _timemachine_corpus(str(shared_path("timemachine", "timemachine.txt")))


@lru_cache(maxsize=1)
def _wells_corpus(folder: str):
    from lmlab.embeddings.corpus import encode_corpus, iter_sentences

    return encode_corpus(iter_sentences(sorted(Path(folder).glob("wells_*.txt")), "text8"))


def wells_corpus():
    """H. G. Wells's three Gutenberg books, text8-style (144k words), encoded once."""
    return _wells_corpus(str(shared_path("gutenberg", "wells_the_time_machine.txt").parent))


# (word, a related word, an unrelated word); chance level is about 5 of 10
TRIPLES = [("eyes", "hands", "machine"), ("hands", "feet", "said"), ("day", "night", "white"),
           ("white", "black", "he"), ("he", "she", "sun"), ("morning", "evening", "face"),
           ("head", "face", "evening"), ("sun", "moon", "feet"), ("little", "small", "time"),
           ("man", "woman", "light")]  # fmt: skip


def related_wins(v) -> int:
    """In how many TRIPLES the related word is nearer than the unrelated one."""
    return sum(v.similarity(a, b) > v.similarity(a, c) for a, b, c in TRIPLES)
