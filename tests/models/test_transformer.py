from __future__ import annotations

import dataclasses

import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.models import Transformer, TransformerConfig, build_model, for_depth


def tiny(block: str, **kw) -> Transformer:
    cfg = TransformerConfig(
        vocab_size=50, context_length=32, n_layer=2, n_head=4, d_model=32, block=block, **kw
    )
    torch.manual_seed(0)
    return Transformer(cfg).eval()


@pytest.mark.parametrize("block,kv", [("gpt2", None), ("llama", 2), ("llama", 1)])
def test_kv_cache_matches_full_forward(block: str, kv) -> None:
    m = tiny(block, n_kv_head=kv)
    ids = torch.randint(0, 50, (3, 24))
    full = m(ids)
    state = m.new_state(3)
    parts = [m(ids[:, :5], state), m(ids[:, 5:13], state)]  # prefill, then a chunk after the cache
    parts += [m(ids[:, i : i + 1], state) for i in range(13, 24)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_causal_future_tokens_do_not_leak() -> None:
    m = tiny("llama")
    a = torch.randint(0, 50, (1, 20))
    b = a.clone()
    b[0, 10:] = (b[0, 10:] + 1) % 50
    assert torch.allclose(m(a)[0, :10], m(b)[0, :10], atol=1e-6)
    assert not torch.allclose(m(a)[0, 10:], m(b)[0, 10:])


def test_config_round_trip_and_depth_dial() -> None:
    cfg = for_depth(12, vocab_size=50257, context_length=1024)
    assert (cfg.n_layer, cfg.d_model, cfg.n_head) == (12, 768, 12)
    m = build_model("transformer", dataclasses.asdict(cfg))
    # GPT-2 small: 124M parameters with tied embeddings
    assert 123_000_000 < m.num_params() < 125_000_000
    small = build_model("transformer", for_depth(2, 100, 64, "llama"))
    again = build_model("transformer", dataclasses.asdict(small.config))
    again.load_tensors(small.tensors_for_save())
    ids = torch.randint(0, 100, (1, 10))
    assert torch.equal(small.eval()(ids), again.eval()(ids))


def test_tied_weights_saved_once() -> None:
    m = tiny("gpt2")
    tensors = m.tensors_for_save()
    assert "tok_emb.weight" in tensors and "head.weight" not in tensors


def test_too_long_and_bad_configs() -> None:
    m = tiny("gpt2")
    with pytest.raises(LmlabError, match="exceeds the context"):
        m(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(LmlabError, match="divisible"):
        TransformerConfig(d_model=30, n_head=4)
    with pytest.raises(LmlabError, match="block"):
        TransformerConfig(block="bert")


@pytest.mark.parametrize("block", ["gpt2", "llama"])
def test_bf16_autocast_projections_in_bf16_attention_in_fp32(block: str, monkeypatch) -> None:
    """Under CPU bf16 autocast the projections run in bf16, attention in fp32 (PyTorch's CPU
    attention is slower in bf16 without AMX), and the gradients stay close to fp32's."""
    m = tiny(block).train()
    ids = torch.randint(0, 50, (4, 24), generator=torch.Generator().manual_seed(1))
    seen: dict[str, torch.dtype] = {}

    def on_qkv(_m, _i, out) -> None:
        seen.setdefault("qkv", out.dtype)

    m.blocks[0].attn.qkv.register_forward_hook(on_qkv)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, *a, **kw):
        seen.setdefault("attention", q.dtype)
        return sdpa(q, *a, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)

    def grads(bf16: bool) -> torch.Tensor:
        m.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = m(ids)
        torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten()).backward()
        return torch.cat([p.grad.flatten() for p in m.parameters()])

    g32 = grads(False)
    seen.clear()
    g16 = grads(True)
    assert seen == {"qkv": torch.bfloat16, "attention": torch.float32}
    assert all(p.grad.dtype == torch.float32 for p in m.parameters())
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.99


@pytest.mark.parametrize(
    "block, kw", [("llama", {"n_kv_head": 2}), ("llama", {"tie_embeddings": False}), ("gpt2", {})]
)
def test_from_tensors_adopts_the_tensors_without_a_copy(block: str, kw) -> None:
    src = tiny(block, **kw)
    tensors = {k: v.detach().clone() for k, v in src.tensors_for_save().items()}
    m = Transformer.from_tensors(src.config, tensors).eval()
    assert m.tok_emb.weight.data_ptr() == tensors["tok_emb.weight"].data_ptr()
    assert (m.head.weight is m.tok_emb.weight) == src.config.tie_embeddings
    x = torch.randint(0, src.config.vocab_size, (2, 9))
    with torch.no_grad():
        assert torch.equal(m(x), src.eval()(x))
    with pytest.raises(RuntimeError, match="missing tensors"):
        Transformer.from_tensors(src.config, {k: v for k, v in tensors.items() if "ln_f" not in k})
    with pytest.raises(RuntimeError, match="unexpected tensors"):
        Transformer.from_tensors(src.config, {**tensors, "extra": torch.zeros(1)})


def test_bf16_weights_on_cpu_keep_float32_rope_attention_and_cache() -> None:
    m = tiny("llama", n_kv_head=2).eval()
    ref = m(torch.arange(10)[None]).float()
    mb = m.to(torch.bfloat16)
    assert mb.rope_cos.dtype == torch.float32 and mb.new_state(1).k[0].dtype == torch.float32
    with torch.no_grad():
        full = mb(torch.arange(10)[None])
        state = mb.new_state(1)
        mb(torch.arange(6)[None], state)
        step = mb(torch.arange(6, 10)[None], state)
    assert full.dtype == torch.bfloat16
    assert (full.float() - ref).abs().max().item() < 0.1 * ref.abs().max().item()
    assert (step.float() - full[:, 6:].float()).abs().max().item() < 0.05
