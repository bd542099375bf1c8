from __future__ import annotations

import math

import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.generate.sampling import SamplingParams, apply_repetition_penalty, choose, filter_logits


def probs_of(logits: torch.Tensor, **kw) -> torch.Tensor:
    return filter_logits(logits, SamplingParams(**kw)).softmax(-1)


def test_top_k_top_p_min_p_masks() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert (probs_of(logits, top_k=2)[0, 2:] == 0).all()
    # top-p 0.7: 0.5 alone is below 0.7, 0.5+0.3 crosses it -> keep two tokens
    p = probs_of(logits, top_p=0.7)
    assert torch.allclose(p, torch.tensor([[0.5 / 0.8, 0.3 / 0.8, 0, 0]]))
    # min-p 0.5: keep tokens with p >= 0.25
    assert torch.allclose(probs_of(logits, min_p=0.5), torch.tensor([[0.5 / 0.8, 0.3 / 0.8, 0, 0]]))
    # temperature 2 flattens: ratio of the top two becomes sqrt(0.5/0.3)
    p = probs_of(logits, temperature=2.0)
    assert math.isclose((p[0, 0] / p[0, 1]).item(), math.sqrt(0.5 / 0.3), rel_tol=1e-5)


def test_repetition_penalty_ctrl_rule() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    out = apply_repetition_penalty(logits, torch.tensor([[True, True, False]]), 2.0)
    assert torch.equal(out, torch.tensor([[1.0, -4.0, 1.0]]))


def test_sampling_follows_the_distribution() -> None:
    probs = torch.tensor([[0.6, 0.3, 0.1, 0.0]])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [choose(probs.log().expand(2000, 4), SamplingParams(), None, g) for _ in range(5)]
    ).flatten()
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert torch.allclose(freq, probs[0], atol=0.02) and freq[3] == 0


def test_greedy_and_seeded_sampling() -> None:
    logits = torch.randn(4, 100)
    assert torch.equal(choose(logits, SamplingParams(temperature=0), None, None), logits.argmax(-1))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = choose(logits, SamplingParams(), None, g1)
    b = choose(logits, SamplingParams(), None, g2)
    assert torch.equal(a, b)


def test_bad_parameters() -> None:
    with pytest.raises(LmlabError, match="top_p"):
        SamplingParams(top_p=1.5)
    with pytest.raises(LmlabError, match="temperature"):
        SamplingParams(temperature=-1)
