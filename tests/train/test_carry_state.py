"""Truncated BPTT: a recurrent model carries its state from batch to batch."""

from __future__ import annotations

import json

import pytest

from lmlab.errors import LmlabError
from lmlab.train.runner import run_training


def config(corpus, family: str = "rnn") -> dict:
    model = (
        {"family": "rnn", "embed_dim": 32, "hidden_size": 48, "n_layer": 1}
        if family == "rnn"
        else {"family": "transformer", "n_layer": 1, "n_head": 2, "d_model": 32}
    )
    return {
        "data": {"corpus": [str(corpus)]},
        "tokenizer": {"kind": "char"},
        "model": model,
        "train": {
            "steps": 300,
            "batch_size": 8,
            "context": 24,
            "lr": 1e-2,
            "warmup": 5,
            "eval_every": 150,
            "checkpoint_every": 1000,
            "log_every": 10,
            "eval_batches": 4,
            "sample_tokens": 0,
            "carry_state": True,
        },
    }


def test_lstm_trains_with_carried_state(tmp_path, tiny_corpus) -> None:
    _, res = run_training(config(tiny_corpus), tmp_path / "run", quiet=True)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert res.step == 300
    # It learns past the unigram plateau (about 3.05 nats on this text) to the bigram regime.
    assert sum(losses[-3:]) / 3 < 2.8


def test_carry_state_is_refused_for_a_fixed_context_model(tmp_path, tiny_corpus) -> None:
    with pytest.raises(LmlabError, match="carry_state needs a recurrent model"):
        run_training(config(tiny_corpus, "transformer"), tmp_path / "run", quiet=True)
