"""The training vocabulary and the tables word2vec samples from.

* :class:`Vocab`: words sorted by falling count (ties keep first-appearance order, as gensim
  does), pruned by ``min_count`` and ``max_vocab``;
* :func:`huffman_codes`: the binary Huffman tree of hierarchical softmax (word2vec's algorithm);
* :func:`negative_table`: the unigram^0.75 table negative samples are drawn from;
* :func:`keep_probabilities`: word2vec's frequent-word subsampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmlab.errors import LmlabError


@dataclass
class Vocab:
    """Kept words (most frequent first) and their corpus counts."""

    words: list[str]
    counts: np.ndarray  # int64, same order as words

    @classmethod
    def build(
        cls, words: list[str], counts: np.ndarray, min_count: int = 5, max_vocab: int | None = None
    ) -> tuple[Vocab, np.ndarray]:
        """Prune and sort; also return ``remap``: provisional id -> vocab id, or -2 if dropped."""
        counts = np.asarray(counts, dtype=np.int64)
        order = np.argsort(-counts, kind="stable")
        order = order[counts[order] >= min_count]
        if max_vocab is not None:
            order = order[:max_vocab]
        if len(order) == 0:
            raise LmlabError(
                f"the vocabulary is empty: no word occurs at least min_count={min_count} times "
                f"among {len(words)} distinct words; lower --min-count or use a larger corpus"
            )
        remap = np.full(len(counts), -2, dtype=np.int32)
        remap[order] = np.arange(len(order), dtype=np.int32)
        return cls([words[i] for i in order], counts[order]), remap

    def __len__(self) -> int:
        return len(self.words)


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability of keeping each occurrence (word2vec / gensim formula); 1 if ``sample`` is 0."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones(len(counts), dtype=np.float32)
    threshold = sample * counts.sum()
    p = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    return np.minimum(p, 1.0).astype(np.float32)


def negative_table(counts: np.ndarray, power: float = 0.75, size: int | None = None) -> np.ndarray:
    """A table of word ids where word ``w`` fills a share ``count_w^power / sum`` of the slots.

    Drawing a uniform slot then gives the smoothed unigram distribution of negative sampling.
    The default size (40 slots per word, between 1M and 10M) keeps the table small enough to
    stay in cache, which matters more for speed than word2vec's 100M slots.
    """
    if size is None:
        size = int(min(10_000_000, max(1_000_000, 40 * len(counts))))
    weights = np.asarray(counts, dtype=np.float64) ** power
    if len(weights) == 0 or weights.sum() <= 0:
        raise LmlabError("cannot build a negative-sampling table from an empty vocabulary")
    bounds = np.cumsum(weights / weights.sum()) * size
    table = np.searchsorted(bounds, np.arange(size, dtype=np.float64) + 0.5, side="right")
    return np.minimum(table, len(weights) - 1).astype(np.int32)


def huffman_codes(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Huffman tree over ``counts`` (sorted descending), as in word2vec's ``CreateBinaryTree``.

    Returns ``codes`` (V, L) uint8 bits from the root down, ``points`` (V, L) int32 inner-node
    ids (0 .. V-2) along the path from the root, and ``lengths`` (V,) int32 code lengths.
    Frequent words get short codes.
    """
    counts = np.asarray(counts, dtype=np.int64)
    v = len(counts)
    if v < 2:
        raise LmlabError("hierarchical softmax needs at least two words in the vocabulary")
    if np.any(np.diff(counts) > 0):
        raise ValueError("huffman_codes expects counts sorted in descending order")
    count = np.concatenate([counts, np.full(v, np.iinfo(np.int64).max // 4, dtype=np.int64)])
    binary = np.zeros(2 * v, dtype=np.uint8)
    parent = np.zeros(2 * v, dtype=np.int64)
    pos1, pos2 = v - 1, v
    for a in range(v - 1):  # two-queue merge: leaves (ascending from the end) and inner nodes
        mins = []
        for _ in range(2):
            if pos1 >= 0 and count[pos1] < count[pos2]:
                mins.append(pos1)
                pos1 -= 1
            else:
                mins.append(pos2)
                pos2 += 1
        count[v + a] = count[mins[0]] + count[mins[1]]
        parent[mins[0]] = parent[mins[1]] = v + a
        binary[mins[1]] = 1
    paths_codes, paths_points = [], []
    for w in range(v):
        code, point, b = [], [], w
        while b != 2 * v - 2:
            code.append(binary[b])
            b = parent[b]
            point.append(b - v)
        paths_codes.append(code[::-1])
        paths_points.append(point[::-1])
    lengths = np.array([len(c) for c in paths_codes], dtype=np.int32)
    width = int(lengths.max())
    codes = np.zeros((v, width), dtype=np.uint8)
    points = np.zeros((v, width), dtype=np.int32)
    for w in range(v):
        codes[w, : lengths[w]] = paths_codes[w]
        points[w, : lengths[w]] = paths_points[w]
    return codes, points, lengths
