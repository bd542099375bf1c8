"""The teacher's cached top-k targets: what is read back is what the teacher computed, the
teacher runs only for shards that are missing, and other settings get their own folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlab.distill import targets as T
from lmlab.distill.loss import topk_targets
from lmlab.distill.objective import DistillObjective
from lmlab.models.transformer import Transformer, TransformerConfig

VOCAB, CONTEXT = 40, 16


@pytest.fixture
def teacher():
    torch.manual_seed(0)
    return Transformer(TransformerConfig(vocab_size=VOCAB, context_length=32, n_layer=1,
                                         n_head=2, d_model=32)).eval()  # fmt: skip


@pytest.fixture
def tokens():
    return np.random.default_rng(0).integers(0, VOCAB, size=9 * CONTEXT + 5).astype(np.uint16)


def spec_for(tokens, k=5, temperature=1.0) -> T.TargetSpec:
    return T.TargetSpec(teacher="test", tokens=T.tokens_digest(tokens), n_tokens=len(tokens),
                        context=CONTEXT, top_k=k, temperature=temperature, vocab_size=VOCAB)  # fmt: skip


def never():
    raise AssertionError("the teacher ran although its targets were cached")


def test_round_trip_matches_the_teacher(tmp_path, teacher, tokens, monkeypatch):
    monkeypatch.setattr(T, "SHARD_WINDOWS", 4)  # 9 windows: shards of 4, 4 and 1
    spec = spec_for(tokens)
    got, seconds = T.open_targets(tmp_path, spec, lambda: teacher, tokens, progress=False,
                                  say=lambda s: None)  # fmt: skip
    assert seconds > 0
    assert sorted(p.name for p in (tmp_path / spec.key).glob("shard-*")) == [
        "shard-00000.safetensors", "shard-00001.safetensors", "shard-00002.safetensors"]  # fmt: skip
    ids = np.array([8, 0, 5, 5])
    idx, logp = got.get(ids)
    x, _ = T.windows(tokens, ids, CONTEXT)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref_logp, ref_idx = topk_targets(teacher(x), 5)
    assert idx.shape == (4, CONTEXT, 5) and logp.shape == (4, CONTEXT, 6)
    assert torch.equal(idx, ref_idx)
    assert torch.allclose(logp, ref_logp, atol=2e-3)  # stored as float16
    assert torch.allclose(logp.exp().sum(-1), torch.ones(4, CONTEXT), atol=5e-3)


def test_reused_without_the_teacher_and_a_lost_shard_is_redone(tmp_path, teacher, tokens,
                                                               monkeypatch):  # fmt: skip
    monkeypatch.setattr(T, "SHARD_WINDOWS", 4)
    spec = spec_for(tokens)
    first, _ = T.open_targets(tmp_path, spec, lambda: teacher, tokens, False, lambda s: None)
    before = first.get(np.arange(9))
    said: list[str] = []
    again, seconds = T.open_targets(tmp_path, spec, never, tokens, False, said.append)
    assert seconds == 0.0 and "reused" in said[0]
    assert all(torch.equal(a, b) for a, b in zip(before, again.get(np.arange(9)), strict=True))
    folder = tmp_path / spec.key
    (folder / "shard-00001.safetensors").unlink()  # e.g. the first pass was killed there
    (folder / "shard-00002.safetensors").write_bytes(b"half a file")
    assert T.missing_shards(folder, spec) == [1, 2]
    said.clear()
    redone, _ = T.open_targets(tmp_path, spec, lambda: teacher, tokens, False, said.append)
    assert "1 of 3 shards already there" in said[0]
    assert all(torch.equal(a, b) for a, b in zip(before, redone.get(np.arange(9)), strict=True))


def test_other_settings_or_text_get_their_own_targets(tmp_path, teacher, tokens):
    a = spec_for(tokens)
    T.open_targets(tmp_path, a, lambda: teacher, tokens, False, lambda s: None)
    for other in (spec_for(tokens, temperature=2.0), spec_for(tokens, k=3),
                  spec_for(tokens[::-1].copy())):  # fmt: skip
        assert other.key != a.key
        got, seconds = T.open_targets(tmp_path, other, lambda: teacher, tokens, False,
                                      lambda s: None)  # fmt: skip
        assert seconds > 0 and got.get(np.array([0]))[0].shape[-1] == other.top_k
    assert len(list(tmp_path.iterdir())) == 4


def test_same_seed_same_batches_with_and_without_the_teacher(tmp_path, teacher, tokens):
    targets, _ = T.open_targets(tmp_path, spec_for(tokens), lambda: teacher, tokens, False,
                                lambda s: None)  # fmt: skip
    distil = DistillObjective(tokens, CONTEXT, 0.5, 1.0, targets)
    scratch = DistillObjective(tokens, CONTEXT, 0.0, 1.0, None)
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(3):
        x1, y1, extra = distil.batch(r1, 4, CONTEXT)
        x2, y2, none = scratch.batch(r2, 4, CONTEXT)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert len(extra) == 2 and none == ()
        assert torch.equal(x1[:, 1:], y1[:, :-1])  # targets are the next tokens
