"""Reading corpora: Gutenberg stripping, text8 words, jieba / character modes, encoding."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.embeddings.corpus import encode_corpus, iter_sentences, list_files, text8_words
from lmlab.errors import LmlabError

BOOK = (
    "The Project Gutenberg eBook of X\nLicence words here.\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n"
    "It's the Time-Machine, 1895!\nSecond line.\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nMore licence.\n"
)


def test_text8_strips_boilerplate_and_keeps_a_to_z_runs(tmp_path):
    assert text8_words(BOOK) == ["it", "s", "the", "time", "machine", "second", "line"]
    f = tmp_path / "book.txt"
    f.write_text(BOOK.replace("\n", "\r\n"), encoding="utf-8")
    streamed = [w for s in iter_sentences([f], "text8") for w in s]
    assert streamed == text8_words(BOOK)
    pieces = list(iter_sentences([f], "text8", max_len=3))
    assert [len(p) for p in pieces] == [3, 3, 1]


def test_words_mode_uses_jieba_for_chinese_and_chars_mode(tmp_path):
    f = tmp_path / "zh.txt"
    f.write_text("我爱北京天安门。\nHello, World!\n", encoding="utf-8")
    lines = list(iter_sentences([f], "words"))
    assert "北京" in lines[0] and "。" not in lines[0]
    assert lines[1] == ["hello", "world"]
    chars = list(iter_sentences([f], "chars"))
    assert chars[0][:3] == ["我", "爱", "北"]


def test_encode_corpus_ids_counts_and_breaks():
    corpus = encode_corpus([["a", "b", "a"], [], ["c", "a"]])
    assert corpus.words == ["a", "b", "c"]
    assert corpus.counts.tolist() == [3, 1, 1]
    assert np.asarray(corpus.ids()).tolist() == [0, 1, 0, -1, 2, 0, -1]
    assert corpus.n_tokens == 5
    corpus.close()


def test_bad_paths_and_modes(tmp_path):
    with pytest.raises(LmlabError, match="not found"):
        list_files([tmp_path / "missing.txt"])
    with pytest.raises(LmlabError, match="no .txt files"):
        list_files([tmp_path])
    with pytest.raises(LmlabError, match="unknown corpus mode"):
        list(iter_sentences([tmp_path], "bytes"))


def test_plain_lines_split_as_the_word_tokenizer_does():
    """The one-regex path for lines without CJK keeps exactly split_words's tokens less
    punctuation, on real English prose with digits, underscores, <unk> and curly quotes."""
    from lmlab.embeddings.corpus import _PUNCT_RE, _line_words
    from lmlab.tokenize.word import split_words
    from shared_data import shared_file

    path = shared_file("gutenberg", "austen_emma.txt")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[:3000]
    lines += ["it's 1,000_000 <unk> “quoted” -- end.\n", "naïve café, Ωmega!\n"]
    for line in lines:
        low = line.lower()
        slow = [w for w in split_words(low, newlines=False) if not _PUNCT_RE.match(w)]
        assert _line_words(line, "words", True) == slow


def test_plain_lines_split_as_the_word_regex_does() -> None:
    """Lines of only words and spaces take str.split(); it must give the regex's words."""
    import random

    from lmlab.embeddings.corpus import _PLAIN_WORDS_RE, _line_words

    rng = random.Random(0)
    pieces = ["the", "Über", "naïve", "a_b", "42", "x2", "<unk>", ",", "'s", "--", "é", "ß",
              " ", "  ", "\t", "\u00a0", "\u2003", "\x1c", "\n"]  # fmt: skip
    plain = 0
    for _ in range(3000):
        line = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        lowered = line.lower()
        assert _line_words(line, "words", True) == _PLAIN_WORDS_RE.findall(lowered), line
        plain += not any(c in lowered for c in ",'-<>")
    assert plain > 100  # the fast path was taken on many lines
