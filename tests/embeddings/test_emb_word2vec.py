"""word2vec: one step's gradients against torch autograd, then training on a real text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _shared import related_wins, timemachine_corpus, wells_corpus

from lmlab.embeddings import _w2v_kernels as K
from lmlab.embeddings.corpus import encode_corpus
from lmlab.embeddings.vocab import huffman_codes
from lmlab.embeddings.word2vec import Word2VecConfig, train_word2vec
from lmlab.errors import LmlabError

D = 8


def _kernel_step(l1, syn1, syn1neg, table, codes, points, lengths, word, hs, negative, alpha):
    neu1e = np.zeros(D, np.float32)
    width = max(codes.shape[1], negative + 1)
    scratch = (np.zeros(width, np.int32), np.zeros(width, np.float32), np.zeros(width, np.float32))
    K._outputs(l1, word, syn1, syn1neg, table, codes, points, lengths, hs, negative,
               np.float32(alpha), neu1e, np.uint64(12345), K.SIGMOID_TABLE, K.LOGSIG_TABLE,
               *scratch)  # fmt: skip
    return neu1e


def test_sgns_step_matches_autograd():
    rng = np.random.default_rng(0)
    l1 = rng.normal(scale=0.5, size=D).astype(np.float32)
    syn1neg = rng.normal(scale=0.5, size=(4, D)).astype(np.float32)
    word, negative_word, alpha = 1, 3, 0.1
    table = np.array([negative_word], np.int32)  # every negative draw is word 3
    dummy = np.zeros((1, 1), np.int32)
    before = syn1neg.copy()
    neu1e = _kernel_step(l1, np.zeros((1, D), np.float32), syn1neg, table, dummy.astype(np.uint8),
                         dummy, np.zeros(1, np.int32), word, False, 1, alpha)  # fmt: skip

    x = torch.tensor(l1, requires_grad=True)
    out = torch.tensor(before, requires_grad=True)
    loss = -torch.nn.functional.logsigmoid(x @ out[word]) - torch.nn.functional.logsigmoid(
        -(x @ out[negative_word])
    )
    loss.backward()
    # SGD: the kernel's input-vector step is -alpha * dL/dx, output rows move by -alpha * dL/dout
    # (the sigmoid comes from word2vec's 1000-entry table, hence the tolerance)
    np.testing.assert_allclose(neu1e, -alpha * x.grad.numpy(), atol=2e-3)
    np.testing.assert_allclose(syn1neg - before, -alpha * out.grad.numpy(), atol=2e-3)
    assert np.abs(neu1e).max() > 1e-2  # the step is not trivially zero


def test_hierarchical_softmax_step_matches_autograd():
    rng = np.random.default_rng(1)
    counts = np.array([10, 6, 3, 1])
    codes, points, lengths = huffman_codes(counts)
    l1 = rng.normal(scale=0.5, size=D).astype(np.float32)
    syn1 = rng.normal(scale=0.5, size=(3, D)).astype(np.float32)
    word, alpha = 3, 0.1
    before = syn1.copy()
    neu1e = _kernel_step(l1, syn1, np.zeros((1, D), np.float32), np.zeros(1, np.int32), codes,
                         points, lengths, word, True, 0, alpha)  # fmt: skip
    x = torch.tensor(l1, requires_grad=True)
    nodes = torch.tensor(before, requires_grad=True)
    loss = torch.zeros(())
    for j in range(lengths[word]):  # code bit 0 means "go to the child with sigmoid(x.n)"
        sign = 1.0 - 2.0 * float(codes[word, j])
        loss = loss - torch.nn.functional.logsigmoid(sign * (x @ nodes[points[word, j]]))
    loss.backward()
    np.testing.assert_allclose(neu1e, -alpha * x.grad.numpy(), atol=2e-3)
    np.testing.assert_allclose(syn1 - before, -alpha * nodes.grad.numpy(), atol=2e-3)


@pytest.mark.parametrize(
    "sg,hs,negative,shared",
    [(True, False, 5, True), (True, False, 5, False), (False, False, 5, True),
     (False, False, 5, False), (True, True, 0, True), (False, True, 0, True)],
)  # fmt: skip
def test_training_lowers_loss_and_relates_words(sg, hs, negative, shared):
    corpus = wells_corpus()
    cfg = Word2VecConfig(sg=sg, hs=hs, negative=negative, vector_size=50, epochs=5,
                         workers=1, progress=False, seed=3, shared_negatives=shared)  # fmt: skip
    result = train_word2vec(corpus, cfg)
    losses = result.epoch_losses
    assert losses[-1] < 0.995 * losses[0], losses
    assert related_wins(result.vectors) >= 7


def test_one_worker_is_deterministic_and_seed_matters():
    corpus = timemachine_corpus()
    cfg = dict(sg=True, vector_size=20, epochs=1, min_count=5, workers=1, progress=False)
    a = train_word2vec(corpus, Word2VecConfig(seed=7, **cfg)).vectors.vectors
    b = train_word2vec(corpus, Word2VecConfig(seed=7, **cfg)).vectors.vectors
    c = train_word2vec(corpus, Word2VecConfig(seed=8, **cfg)).vectors.vectors
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_shared_negatives_change_negative_sampling_only():
    """Shared draws of negatives (per skip-gram window, per two CBOW centre words) make a
    different, faster run of negative sampling; hierarchical softmax ignores the setting."""
    corpus = timemachine_corpus()
    cfg = dict(vector_size=20, epochs=1, min_count=5, workers=1, progress=False, seed=7)

    def vectors(**kw):
        return train_word2vec(corpus, Word2VecConfig(**cfg, **kw)).vectors.vectors

    for sg in (True, False):
        assert not np.array_equal(vectors(sg=sg), vectors(sg=sg, shared_negatives=False))
    for kw in (dict(sg=True, hs=True, negative=0), dict(sg=False, hs=True, negative=0)):
        np.testing.assert_array_equal(
            vectors(**kw, shared_negatives=True), vectors(**kw, shared_negatives=False)
        )


def test_two_workers_train_too():
    corpus = wells_corpus()
    cfg = Word2VecConfig(vector_size=50, epochs=5, workers=2, progress=False, chunk_words=5000)
    result = train_word2vec(corpus, cfg)
    assert related_wins(result.vectors) >= 7 and result.extra["workers"] == 2


def test_bad_settings_and_empty_vocabulary():
    corpus = encode_corpus([["a", "b", "c"]])
    with pytest.raises(LmlabError, match="vocabulary is empty"):
        train_word2vec(corpus, Word2VecConfig(min_count=5, progress=False))
    with pytest.raises(LmlabError, match="nothing to train"):
        train_word2vec(corpus, Word2VecConfig(negative=0, hs=False, progress=False))
    with pytest.raises(LmlabError, match="window"):
        train_word2vec(corpus, Word2VecConfig(window=0, progress=False))
