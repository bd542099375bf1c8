"""The attention-only option (``mlp = false``) of the transformer family."""

from __future__ import annotations

import dataclasses

import torch

from lmlab.models import Transformer, TransformerConfig, build_model


def test_attention_only_blocks_have_no_mlp_and_round_trip() -> None:
    kw = dict(vocab_size=40, context_length=16, n_layer=2, n_head=2, d_model=16)
    full = Transformer(TransformerConfig(**kw))
    torch.manual_seed(0)
    attn_only = Transformer(TransformerConfig(**kw, mlp=False)).eval()
    names = set(attn_only.tensors_for_save())
    assert not any(".mlp." in n or ".ln2." in n for n in names)
    assert attn_only.num_params() < full.num_params()
    again = build_model("transformer", dataclasses.asdict(attn_only.config))
    again.load_tensors(attn_only.tensors_for_save())
    ids = torch.randint(0, 40, (2, 12))
    assert torch.equal(attn_only(ids), again.eval()(ids))
    state = attn_only.new_state(2)  # the KV cache path works without MLPs too
    steps = torch.cat([attn_only(ids[:, i : i + 1], state) for i in range(12)], 1)
    assert torch.allclose(steps, attn_only(ids), atol=1e-5)


def test_default_config_keeps_mlp_and_old_checkpoints_load() -> None:
    cfg = TransformerConfig(vocab_size=40, context_length=16, n_layer=1, n_head=2, d_model=16)
    assert cfg.mlp is True
    d = dataclasses.asdict(cfg)
    d.pop("mlp")  # a config.toml written before the option existed
    m = build_model("transformer", d)
    assert any(".mlp." in n for n in m.tensors_for_save())
