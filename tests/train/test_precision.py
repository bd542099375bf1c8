"""Mixed precision and torch.compile in the trainer: the fast CPU path still learns."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.train import precision
from lmlab.train.config import TrainConfig
from lmlab.train.runner import run_training


def config(corpus, **train) -> dict:
    """A small character Transformer that leaves the unigram plateau in 300 steps."""
    return {
        "data": {"corpus": [str(corpus)]},
        "tokenizer": {"kind": "char"},
        "model": {"family": "transformer", "n_layer": 2, "n_head": 2, "d_model": 64},
        "train": {
            "steps": 300,
            "batch_size": 16,
            "context": 64,
            "lr": 3e-3,
            "warmup": 10,
            "eval_every": 1000,
            "checkpoint_every": 1000,
            "log_every": 10,
            "eval_batches": 4,
            "sample_tokens": 0,
            **train,
        },
    }


def test_bf16_compiled_transformer_learns_like_fp32(tmp_path, tiny_corpus) -> None:
    _, ref = run_training(config(tiny_corpus), tmp_path / "fp32", quiet=True)
    model, res = run_training(
        config(tiny_corpus, precision="bf16", compile=True),
        tmp_path / "bf16",
        quiet=True,
        progress=False,
    )
    rows = [json.loads(x) for x in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert res.step == 300 and losses[0] > 3.5  # starts from a near-uniform guess
    assert math.isfinite(res.final["val_loss"])
    # Same seed, same batches: bf16 products and a compiled graph end where fp32 does.
    assert abs(res.final["val_loss"] - ref.final["val_loss"]) < 0.05
    assert res.final["val_loss"] < 2.7  # past the unigram plateau (about 3.05 nats)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights


def test_auto_precision_takes_bf16_only_where_it_is_native(monkeypatch) -> None:
    cpu = torch.device("cpu")
    assert precision.autocast_dtype("fp32", cpu) is None
    assert precision.autocast_dtype("bf16", cpu) == torch.bfloat16
    for native, want in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda n=native: n)
        assert precision.autocast_dtype("auto", cpu) == want
    with pytest.raises(LmlabError, match="'fp32', 'bf16' or 'auto'"):
        TrainConfig(precision="fp16")


def test_the_card_says_what_auto_resolved_to(tmp_path, tiny_corpus) -> None:
    cfg = config(tiny_corpus, steps=5, precision="auto", device="cpu")
    _, res = run_training(cfg, tmp_path / "r", quiet=True, progress=False)
    want = "bf16" if precision.cpu_has_native_bf16() else "fp32"
    assert res.precision == want
    assert f"computed on: cpu in {want}" in (tmp_path / "r" / "card.md").read_text()
