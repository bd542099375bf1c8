"""Grokking on modular addition: data, the exact fast forward, detection, a small real run."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from lmlab.errors import LmlabError
from lmlab.lab.grokking import (
    GrokConfig,
    GrokResult,
    answer_logits,
    build_grok_model,
    make_optimizer,
    modular_addition_data,
    run_grokking,
    summary_line,
    train_grokking,
)
from lmlab.models.transformer import Transformer, TransformerConfig


def test_modular_addition_split_covers_every_pair_once() -> None:
    x_tr, y_tr, x_te, y_te = modular_addition_data(11, 0.3, seed=0)
    assert len(x_tr) == round(0.3 * 121) and len(x_tr) + len(x_te) == 121
    x, y = torch.cat([x_tr, x_te]), torch.cat([y_tr, y_te])
    assert len({tuple(r) for r in x[:, :2].tolist()}) == 121  # every (a, b) exactly once
    assert (x[:, 2] == 11).all()  # the "=" token
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % 11)
    again = modular_addition_data(11, 0.3, seed=0)
    assert torch.equal(again[0], x_tr) and not torch.equal(
        modular_addition_data(11, 0.3, 1)[0], x_tr
    )


@pytest.mark.parametrize(
    "cfg",
    [
        dict(n_layer=1, block="gpt2"),
        dict(n_layer=1, block="llama"),
        dict(n_layer=1, block="llama", n_kv_head=2),
        dict(n_layer=2, block="gpt2"),
    ],
)
def test_answer_logits_equal_the_full_forward_with_gradients(cfg) -> None:
    torch.manual_seed(0)
    model = Transformer(
        TransformerConfig(
            vocab_size=14, context_length=3, n_head=4, d_model=32, tie_embeddings=False, **cfg
        )
    )
    for p in model.parameters():  # large weights, so any mistake shows
        torch.nn.init.normal_(p, std=0.3)
    x, y, _, _ = modular_addition_data(13, 0.5, seed=0)
    fast = answer_logits(model, x)
    full = model(x)[:, -1]
    assert torch.allclose(fast, full, atol=1e-5)
    g_fast = torch.autograd.grad(F.cross_entropy(fast, y), list(model.parameters()))
    g_full = torch.autograd.grad(F.cross_entropy(full, y), list(model.parameters()))
    for a, b in zip(g_fast, g_full, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_model_and_optimizer_follow_the_issue() -> None:
    cfg = GrokConfig()
    m = build_grok_model(cfg)
    c = m.config
    assert (c.n_layer, c.d_model, c.n_head, c.ff_dim, c.block, c.vocab_size) == (
        1,
        128,
        4,
        512,
        "gpt2",
        114,
    )
    opt = make_optimizer(m, cfg)
    assert opt.defaults["lr"] == 1e-3 and opt.defaults["betas"] == (0.9, 0.98)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 1.0 for p in g["params"]}
    assert id(m.blocks[0].mlp.fc.weight) in decayed and id(m.tok_emb.weight) in decayed
    assert id(m.blocks[0].ln1.weight) not in decayed
    with pytest.raises(LmlabError):
        GrokConfig(train_fraction=1.0)


def test_detection_on_hand_made_curves() -> None:
    r = GrokResult(weight_decay=1.0)
    r.steps = [0, 100, 200, 300, 400, 500]
    r.train_acc = [0.01, 1.0, 1.0, 1.0, 1.0, 1.0]
    r.test_acc = [0.01, 0.2, 0.3, 0.25, 0.97, 1.0]
    r.train_loss = r.test_loss = [1.0] * 6
    assert (r.memorised_at, r.grokked_at) == (100, 400)
    assert r.plateau_test_acc() == 0.25  # median of 0.2, 0.3, 0.25
    line = summary_line(r)
    assert "step 100" in line and "stalls at 25.0%" in line and "> 95% at step 400" in line
    r.test_acc = [0.01, 0.2, 0.3, 0.25, 0.3, 0.3]
    assert r.grokked_at is None and "no grokking in 500 steps" in summary_line(r)


@pytest.mark.slow
def test_modular_addition_is_learned_with_half_the_pairs(tmp_path) -> None:
    """The real training path, small: the training pairs are memorised within 80 full-batch
    steps and the held-out pairs are already predicted far above chance (1/43)."""
    cfg = GrokConfig(p=43, train_fraction=0.5, steps=80, eval_every=20, threads=1)
    results = run_grokking(cfg, tmp_path, control_weight_decay=None, progress=False)
    r = results[0]
    assert r.steps == [0, 20, 40, 60, 80]
    assert r.train_acc[0] < 0.1 and r.train_acc[-1] > 0.99
    assert r.test_acc[-1] > 10 / 43
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["config"]["p"] == 43 and len(hist["runs"]) == 1
    assert (tmp_path / "grokking.png").read_bytes()[:4] == b"\x89PNG"
    assert "weight decay 1" in (tmp_path / "summary.md").read_text()


def test_training_is_seeded(tmp_path) -> None:
    cfg = GrokConfig(p=7, d_model=16, n_head=2, d_ff=32, steps=6, eval_every=3, threads=1)
    a = train_grokking(cfg, progress=False)[1]
    b = train_grokking(cfg, progress=False)[1]
    assert a.test_loss == b.test_loss and a.steps == [0, 3, 6]
