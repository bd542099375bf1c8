"""The span model's attention rules: causal by default, both ways in the top ``bidirectional``
blocks (never reading right padding), and the frozen-block cache giving the same logits."""

from __future__ import annotations

import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.models.transformer import Transformer, TransformerConfig
from lmlab.tasks.qa.model import SpanModel


def span_model(freeze: int = 0, bidirectional: int = 0, block: str = "llama") -> SpanModel:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=50, context_length=32, n_layer=3, n_head=2, d_model=16,
                            block=block)  # fmt: skip
    return SpanModel(Transformer(cfg), freeze, bidirectional).eval()


@pytest.mark.parametrize("block", ["llama", "gpt2"])
def test_causal_positions_ignore_later_tokens_bidirectional_ones_read_them(block):
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = torch.tensor([[1, 2, 3, 9, 9, 9]])  # differs from position 3 on
    with torch.no_grad():
        causal = span_model(block=block)
        assert torch.allclose(causal(a)[0, :3], causal(b)[0, :3], atol=1e-6)
        both = span_model(bidirectional=1, block=block)
        assert not torch.allclose(both(a)[0, :3], both(b)[0, :3], atol=1e-4)


def test_bidirectional_blocks_never_read_right_padding():
    model = span_model(bidirectional=2)
    seq = torch.tensor([[4, 8, 15, 16, 23]])
    padded = torch.tensor([[4, 8, 15, 16, 23, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        alone = model(seq)
        batch = model(padded, torch.tensor([5, 8]))
        unmasked = model(padded)  # without lengths the padding is read
    assert torch.allclose(alone[0], batch[0, :5], atol=1e-5)
    assert not torch.allclose(alone[0], unmasked[0, :5], atol=1e-4)


def test_cached_frozen_features_give_the_same_logits():
    model = span_model(freeze=2, bidirectional=1).train()
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 0, 0]])
    n = torch.tensor([8, 6])
    direct = model(ids, n)
    cached = model.from_features(model.frozen_features(ids), n)
    assert torch.allclose(direct, cached, atol=1e-5)
    cached.sum().backward()  # the gradient reaches the trained blocks and the head only
    assert model.qa.weight.grad is not None
    assert model.body.blocks[2].attn.qkv.weight.grad is not None


def test_bidirectional_must_fit_the_trained_blocks():
    with pytest.raises(LmlabError, match="--bidirectional must be 0..1"):
        span_model(freeze=2, bidirectional=2)
