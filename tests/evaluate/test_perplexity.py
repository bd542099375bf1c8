from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lmlab.evaluate.perplexity import Score, stream_loss
from lmlab.models import RNNConfig, RNNLanguageModel, Transformer, TransformerConfig


def test_stream_loss_equals_direct_loss_within_one_window() -> None:
    torch.manual_seed(0)
    m = Transformer(
        TransformerConfig(vocab_size=30, context_length=64, n_layer=1, n_head=2, d_model=16)
    ).eval()
    ids = np.random.default_rng(0).integers(0, 30, 50)
    loss, n = stream_loss(m, ids)
    t = torch.tensor(ids)
    direct = F.cross_entropy(m(t[None, :-1])[0], t[1:]).item()
    assert n == 49 and math.isclose(loss, direct, rel_tol=1e-5)


def test_sliding_windows_score_every_token_once() -> None:
    torch.manual_seed(0)
    m = Transformer(
        TransformerConfig(vocab_size=30, context_length=16, n_layer=1, n_head=2, d_model=16)
    ).eval()
    ids = np.random.default_rng(1).integers(0, 30, 97)
    loss, n = stream_loss(m, ids, stride=16)  # stride = context: plain non-overlapping blocks
    t = torch.tensor(ids)
    total = 0.0
    for s in range(0, 96, 16):
        e = s + 16
        total += F.cross_entropy(m(t[None, s:e])[0], t[s + 1 : e + 1], reduction="sum").item()
    assert n == 96 and math.isclose(loss, total / 96, rel_tol=1e-5)


def test_rnn_stream_loss_carries_state() -> None:
    torch.manual_seed(0)
    m = RNNLanguageModel(RNNConfig(vocab_size=30, embed_dim=8, hidden_size=8)).eval()
    ids = np.random.default_rng(2).integers(0, 30, 3000)
    loss, n = stream_loss(m, ids)
    t = torch.tensor(ids)
    direct = F.cross_entropy(m(t[None, :-1])[0], t[1:]).item()
    assert n == 2999 and math.isclose(loss, direct, rel_tol=1e-4)


def test_bits_per_byte() -> None:
    s = Score(loss=math.log(2), tokens=10, bytes_per_token=2.0)
    assert math.isclose(s.bits_per_byte, 0.5) and math.isclose(s.perplexity, 2.0)


def test_count_models_are_scored_without_full_distributions() -> None:
    from lmlab.models.ngram import NGramLM

    rng = np.random.default_rng(3)
    train = rng.integers(0, 12, 3000)
    lm = NGramLM.fit(train, order=3, vocab_size=12, eos_id=0)
    ids = np.concatenate([[0], rng.integers(1, 12, 200)])
    fast, n = stream_loss(lm, ids)
    logits = lm(torch.tensor(ids[None, :-1]))[0]  # the slow way, through forward
    slow = F.cross_entropy(logits, torch.tensor(ids[1:])).item()
    assert n == 200 and math.isclose(fast, slow, rel_tol=1e-5)
