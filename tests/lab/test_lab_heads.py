"""Attention patterns recomputed outside the model, and per-head induction scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.lab.heads import (
    attention_patterns,
    head_scores,
    prefix_matching_score,
    previous_token_score,
    repeated_random_tokens,
    top_heads,
)
from lmlab.models import build_model
from lmlab.models.transformer import Transformer, TransformerConfig


def test_prefix_matching_score_on_a_hand_built_pattern() -> None:
    k, start, T = 4, 1, 9  # [bos, r1..r4, r1..r4]
    pat = torch.zeros(1, 3, T, T)
    for i in range(T):
        pat[0, 0, i, max(0, i - k + 1)] = 1.0  # head 0: a perfect induction head
        pat[0, 1, i, : i + 1] = 1.0 / (i + 1)  # head 1: uniform over the past
        pat[0, 2, i, max(0, i - 1)] = 1.0  # head 2: previous token
    scores = prefix_matching_score(pat, k, start)
    # second repeat = queries 5..8; head 1 gives the target 1/(i+1) each
    uniform = np.mean([1 / 6, 1 / 7, 1 / 8, 1 / 9])
    assert scores.tolist() == pytest.approx([1.0, uniform, 0.0])
    assert previous_token_score(pat).tolist() == pytest.approx(
        [1 / 8, np.mean([1 / (i + 1) for i in range(1, T)]), 1.0]  # head 0: only at i = 1
    )
    with pytest.raises(ValueError):
        prefix_matching_score(pat, 5, start)  # 1 + 2 * 5 > 9 positions


def _sdpa_outputs(model: Transformer, ids: torch.Tensor) -> list[torch.Tensor]:
    outs: list[torch.Tensor] = []
    hooks = [b.attn.register_forward_hook(lambda m, a, o: outs.append(o)) for b in model.blocks]
    model(ids)
    for h in hooks:
        h.remove()
    return outs


@pytest.mark.parametrize("block,kv", [("gpt2", None), ("llama", 2), ("llama", 1)])
def test_recomputed_patterns_reproduce_the_fused_attention(block: str, kv) -> None:
    torch.manual_seed(0)
    model = Transformer(
        TransformerConfig(
            vocab_size=30,
            context_length=16,
            n_layer=2,
            n_head=4,
            n_kv_head=kv,
            d_model=32,
            block=block,
        )
    ).eval()
    ids = torch.randint(0, 30, (2, 12))
    pats = attention_patterns(model, ids)
    assert [p.shape for p in pats] == [(2, 4, 12, 12)] * 2
    inputs: list[torch.Tensor] = []
    hooks = [
        b.attn.register_forward_pre_hook(lambda m, a: inputs.append(a[0])) for b in model.blocks
    ]
    fused = _sdpa_outputs(model, ids)
    for h in hooks:
        h.remove()
    for layer, (pat, x) in enumerate(zip(pats, inputs, strict=True)):
        assert torch.allclose(pat.sum(-1), torch.ones(2, 4, 12), atol=1e-5)
        assert pat.triu(1).abs().max() == 0  # causal
        attn = model.blocks[layer].attn
        _, _, v = attn.qkv(x).split([4 * attn.hd, attn.n_kv * attn.hd, attn.n_kv * attn.hd], -1)
        v = v.view(2, 12, attn.n_kv, attn.hd).transpose(1, 2).repeat_interleave(4 // attn.n_kv, 1)
        y = (pat @ v).transpose(1, 2).reshape(2, 12, 32)
        assert torch.allclose(attn.proj(y), fused[layer], atol=1e-5)


def test_repeated_random_tokens_are_seeded_and_repeat() -> None:
    a = repeated_random_tokens(5, 6, range(3, 20), seed=1, bos=0)
    assert a.shape == (5, 13) and (a[:, 0] == 0).all()
    assert torch.equal(a[:, 1:7], a[:, 7:])
    assert all(len(set(row[1:7].tolist())) == 6 for row in a)  # distinct within a copy
    assert int(a[:, 1:].min()) >= 3 and int(a.max()) < 20
    assert torch.equal(a, repeated_random_tokens(5, 6, range(3, 20), seed=1, bos=0))
    assert not torch.equal(a, repeated_random_tokens(5, 6, range(3, 20), seed=2, bos=0))
    assert repeated_random_tokens(2, 10, [4, 5], seed=0).shape == (2, 20)  # too few: recur


def test_head_scores_shapes_and_top_heads() -> None:
    torch.manual_seed(0)
    model = build_model(
        "transformer", dict(vocab_size=40, context_length=33, n_layer=2, n_head=3, d_model=24)
    ).eval()
    s = head_scores(model, range(1, 40), n_seqs=5, bos=0, batch_size=2)
    assert s["prefix_matching"].shape == (2, 3) == s["previous_token"].shape
    # an untrained model spreads attention: about 1 / (position) on any one key
    assert 0 < s["prefix_matching"].max() < 0.2
    scores = np.array([[0.1, 0.9, 0.3], [0.5, 0.2, 0.95]])
    assert top_heads(scores, 3) == [(1, 2, 0.95), (0, 1, 0.9), (1, 0, 0.5)]


def test_non_transformers_are_refused_with_a_clear_error() -> None:
    rnn = build_model("rnn", dict(vocab_size=20, embed_dim=8, hidden_size=8, n_layer=1))
    with pytest.raises(LmlabError, match="need a transformer"):
        attention_patterns(rnn, torch.zeros(1, 4, dtype=torch.long))
