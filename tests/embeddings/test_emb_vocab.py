"""Vocabulary pruning, Huffman codes, the negative-sampling table and subsampling."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from lmlab.embeddings.vocab import Vocab, huffman_codes, keep_probabilities, negative_table
from lmlab.errors import LmlabError


def _huffman_cost(counts: list[int]) -> int:
    """Total weighted code length of an optimal prefix code (textbook heap construction)."""
    heap = list(counts)
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


def test_huffman_codes_toy_vocabulary():
    counts = np.array([40, 20, 15, 10, 8, 4, 2, 1])
    codes, points, lengths = huffman_codes(counts)
    v = len(counts)
    words = ["".join(map(str, codes[w, : lengths[w]])) for w in range(v)]
    # prefix-free, optimal, frequent words get codes no longer than rarer ones
    assert all(not b.startswith(a) for a in words for b in words if a != b)
    assert int((lengths * counts).sum()) == _huffman_cost(counts.tolist())
    assert all(lengths[i] <= lengths[i + 1] for i in range(v - 1))
    # every path starts at the root (inner node v-2) and visits distinct inner nodes 0..v-2
    assert (points[:, 0] == v - 2).all()
    for w in range(v):
        path = points[w, : lengths[w]]
        assert len(set(path.tolist())) == len(path) and path.min() >= 0 and path.max() <= v - 2


def test_huffman_known_lengths_and_errors():
    _, _, lengths = huffman_codes(np.array([4, 2, 1, 1]))
    assert lengths.tolist() == [1, 2, 3, 3]
    with pytest.raises(LmlabError):
        huffman_codes(np.array([3]))


def test_negative_table_follows_unigram_075():
    counts = np.array([1000, 300, 100, 10, 1])
    table = negative_table(counts, 0.75, size=1_000_000)
    freq = np.bincount(table, minlength=len(counts)) / len(table)
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(freq, expected, atol=2e-6)
    assert set(np.unique(table).tolist()) == set(range(len(counts)))


def test_keep_probabilities_match_word2vec_formula():
    counts = np.array([100_000, 1_000, 10])
    p = keep_probabilities(counts, 1e-3)
    t = 1e-3 * counts.sum()
    np.testing.assert_allclose(p[0], (np.sqrt(counts[0] / t) + 1) * t / counts[0], rtol=1e-6)
    assert p[2] == 1.0 and p[0] < p[1] <= 1.0
    assert (keep_probabilities(counts, 0) == 1).all()


def test_vocab_prunes_sorts_and_remaps():
    words = ["b", "a", "c", "d"]
    counts = np.array([5, 9, 5, 1])
    vocab, remap = Vocab.build(words, counts, min_count=2)
    assert vocab.words == ["a", "b", "c"]  # ties keep first-appearance order
    assert remap.tolist() == [1, 0, 2, -2]
    vocab, _ = Vocab.build(words, counts, min_count=1, max_vocab=2)
    assert vocab.words == ["a", "b"]
    with pytest.raises(LmlabError, match="vocabulary is empty"):
        Vocab.build(words, counts, min_count=100)
