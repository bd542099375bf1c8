"""<unk> in evaluation: a literal <unk> is one word, and unknown words pay their spelling."""

from __future__ import annotations

import math

import numpy as np

from lmlab.evaluate.unknown import (
    SpellingCost,
    count_unk,
    estimated_spelling_bits,
    spelling_bits,
    unk_warning,
)
from lmlab.tokenize import CharTokenizer, WordTokenizer


def test_a_literal_unk_is_one_unknown_word() -> None:
    tok = WordTokenizer.train(["the cat sat on the mat . the <unk> sat"], max_vocab=100)
    assert "<unk>" not in tok.words and "unk" not in tok.words
    ids, unknown = tok.encode_unknowns("the <unk> sat on a dog")
    assert tok.encode("the <unk> sat") == [tok.encode("the")[0], tok.unk_id, tok.encode("sat")[0]]
    assert ids.tolist() == tok.encode("the <unk> sat on a dog") and len(ids) == 6
    assert unknown == ["<unk>", "a", "dog"] and count_unk(tok, ids) == 3
    lower = WordTokenizer.train(["The <UNK> cat"], lowercase=True)
    assert lower.encode("<UNK>") == [lower.unk_id]


def test_spelling_is_a_complete_code() -> None:
    sp = SpellingCost(["the", "cat", "sat", "mat"])
    kraft = sum(2.0**-b for b in sp._bits.values()) + 2.0**-sp.end_bits + 2.0**-sp.escape_bits
    assert math.isclose(kraft, 1.0)
    assert sp.bits("at") < sp.bits("zq") < sp.bits("zqx")  # unseen letters cost an escape
    assert math.isclose(sp.bits("é") - sp.end_bits, sp.escape_bits + 16)  # 2 UTF-8 bytes
    assert sp.bits("a" * 10) > sp.bits("a")  # longer words cost more


def test_unknown_words_are_charged_and_a_literal_unk_costs_one_bit() -> None:
    tok = WordTokenizer.train(["the cat sat on the mat"], max_vocab=100)
    sp = SpellingCost(tok.words)
    assert spelling_bits(tok, ["<unk>"]) == 1.0
    assert math.isclose(spelling_bits(tok, ["dog", "<unk>"]), 2.0 + sp.bits("dog"))
    est = estimated_spelling_bits(tok, 3)
    assert 3 * (1 + sp.end_bits) < est < 3 * 8 * 10
    char = CharTokenizer.train(["abc"])
    assert count_unk(char, np.arange(10)) == 0 and estimated_spelling_bits(char, 0) == 0.0


def test_warning_above_one_percent() -> None:
    assert unk_warning(0.01) is None and unk_warning(0.0) is None
    w = unk_warning(0.2846)
    assert w is not None and "28.46%" in w and "\n" not in w
