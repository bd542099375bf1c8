"""GloVe: co-occurrence counting, one AdaGrad step against autograd, training on real text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _shared import related_wins, wells_corpus

from lmlab.embeddings.cooccur import cooccurrence
from lmlab.embeddings.corpus import encode_corpus
from lmlab.embeddings.glove import GloveConfig, glove_step, shuffle_records, train_glove
from lmlab.embeddings.vocab import Vocab
from lmlab.errors import LmlabError


def test_cooccurrence_counts_by_hand():
    # ids 0 1 2 | 0 2 ; window 2, weights 1/distance, no pairs across the sentence break
    corpus = encode_corpus([["a", "b", "c"], ["a", "c"]])
    remap = np.arange(3, dtype=np.int32)
    x = cooccurrence(corpus.ids(), remap, 3, window=2, progress=False).toarray()
    expected = np.zeros((3, 3))
    for i, j, w in [(0, 1, 1.0), (1, 2, 1.0), (0, 2, 0.5), (0, 2, 1.0)]:
        expected[i, j] += w
        expected[j, i] += w
    np.testing.assert_allclose(x, expected)
    left = cooccurrence(corpus.ids(), remap, 3, window=2, symmetric=False, progress=False).toarray()
    assert left[1, 0] == 1.0 and left[0, 1] == 0.0  # row = centre word, column = left context


def test_cooccurrence_drops_unknown_words_and_ignores_chunking():
    corpus = wells_corpus()
    vocab, remap = Vocab.build(corpus.words, corpus.counts, min_count=20)
    big = cooccurrence(corpus.ids(), remap, len(vocab), window=5, progress=False).tocsr()
    small = cooccurrence(
        corpus.ids(), remap, len(vocab), window=5, chunk_tokens=9_999, progress=False
    ).tocsr()
    assert abs(big - small).max() < 1e-6 * big.max()
    assert big.shape == (len(vocab), len(vocab)) and abs(big - big.T).max() < 1e-3


def test_glove_step_matches_autograd():
    rng = np.random.default_rng(0)
    v, d = 3, 6
    w, c = rng.normal(size=(v, d)).astype(np.float32), rng.normal(size=(v, d)).astype(np.float32)
    bw, bc = rng.normal(size=v).astype(np.float32), rng.normal(size=v).astype(np.float32)
    i, j, x, x_max, alpha, eta = 0, 2, 3.0, 10.0, 0.75, 0.05
    weight = min(1.0, (x / x_max) ** alpha)
    tw, tc = torch.tensor(w, requires_grad=True), torch.tensor(c, requires_grad=True)
    tbw, tbc = torch.tensor(bw, requires_grad=True), torch.tensor(bc, requires_grad=True)
    loss = 0.5 * weight * (tw[i] @ tc[j] + tbw[i] + tbc[j] - np.log(x)) ** 2
    loss.backward()
    ones = lambda a: np.ones_like(a)  # noqa: E731  AdaGrad accumulators start at 1, as in glove.c
    gw, gc, gbw, gbc = ones(w), ones(c), ones(bw), ones(bc)
    w0, c0, bw0, bc0 = w.copy(), c.copy(), bw.copy(), bc.copy()
    pairs = np.array([[i, j, 0, 0]], np.int32)
    pairs.view(np.float32)[0, 2:] = [np.log(x), weight]
    cost = glove_step(pairs, pairs.view(np.float32), w, c, bw, bc, gw, gc, gbw, gbc,
                      np.float32(eta), np.float32(100.0))  # fmt: skip
    assert cost == pytest.approx(loss.item(), rel=1e-5)
    # first AdaGrad step with accumulators at 1 is plain SGD: theta -= eta * grad for the
    # vectors; glove.c steps the biases without eta
    np.testing.assert_allclose(w - w0, -eta * tw.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(c - c0, -eta * tc.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bw - bw0, -tbw.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bc - bc0, -tbc.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gw[i], 1 + (eta * tw.grad.numpy()[i]) ** 2, rtol=1e-5)
    assert np.abs(tw.grad.numpy()[i]).max() > 1e-2


def test_glove_training_lowers_loss_and_relates_words():
    cfg = GloveConfig(vector_size=50, epochs=10, workers=2, progress=False)
    result = train_glove(wells_corpus(), cfg)
    losses = result.epoch_losses
    assert all(b < a for a, b in zip(losses[:-1], losses[1:], strict=True)), losses
    assert related_wins(result.vectors) >= 7
    assert result.extra["nonzeros"] > 100_000


def test_glove_bad_input():
    with pytest.raises(LmlabError, match="vocabulary is empty"):
        train_glove(encode_corpus([["a", "b"]]), GloveConfig(min_count=3, progress=False))
    with pytest.raises(LmlabError, match="no co-occurrences"):
        train_glove(encode_corpus([["a"], ["b"]]), GloveConfig(min_count=1, progress=False))


def test_shuffle_records_is_a_uniform_permutation():
    src = np.arange(20, dtype=np.int32).reshape(5, 4)
    dst = np.empty_like(src)
    first = np.zeros((5, 5), int)  # first[record, position]
    for seed in range(3000):
        shuffle_records(src, dst, seed, 3)
        assert sorted(dst[:, 0].tolist()) == src[:, 0].tolist()
        assert (dst[:, 1:] - dst[:, :1] == [1, 2, 3]).all()  # records move whole
        first[dst[:, 0] // 4, np.arange(5)] += 1
    assert np.abs(first - 600).max() < 100  # each record lands in each place ~1/5 of the time
