"""A literal ``<eos>`` typed in a prompt (``lmlab generate --prompt``, ``lmlab chat``) is
ordinary text, not the end-of-document id (a byte-level BPE run read it as one before)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from lmlab.cli import main

TEXT = "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.\n" * 40


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("special")
    corpus = root / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = root / "bpe"
    args = ["train", "--corpus", str(corpus), "--tokenizer", "bpe", "--vocab-size", "300",
            "--depth", "1", "--context", "32", "--steps", "2", "--batch-size", "2",
            "--eval-every", "2", "--set", "train.eval_batches=1", "--set", "train.sample_tokens=0",
            "--set", "train.threads=1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


def _spy_prompts(monkeypatch) -> list[list[int]]:
    """The token ids of every prompt the engine prepares, less the one-token throwaway
    prompt of loading's warm-up (``engine.warm_up``), which comes first."""
    from lmlab.generate import engine

    seen: list[list[int]] = []
    warm: list[list[int]] = []
    real = engine.prepare_prompt

    def spy(*a, **k):
        ids = real(*a, **k)
        (seen if warm else warm).append(list(ids))
        return ids

    monkeypatch.setattr(engine, "prepare_prompt", spy)
    return seen


def test_generate_prompt_with_a_literal_eos_is_text(bpe_run, monkeypatch, capsys) -> None:
    from lmlab.tokenize import load_tokenizer

    tok = load_tokenizer(bpe_run / "tokenizer.json")
    seen = _spy_prompts(monkeypatch)
    prompt = "Shall <eos> I"
    assert main(["generate", "--run", str(bpe_run), "--prompt", prompt, "--max-new-tokens", "3",
                 "--temperature", "0"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith(prompt)
    assert seen and all(ids == tok.encode(prompt) for ids in seen)
    assert tok.eos_id not in seen[0] and tok.decode(seen[0]) == prompt


def test_chat_message_with_a_literal_eos_is_text(bpe_run, monkeypatch, capsys) -> None:
    from lmlab.tokenize import load_tokenizer

    tok = load_tokenizer(bpe_run / "tokenizer.json")
    seen = _spy_prompts(monkeypatch)
    monkeypatch.setattr(sys, "stdin", io.StringIO("tell me <eos> now\n"))
    assert main(["chat", "--run", str(bpe_run), "--max-new-tokens", "2", "--temperature", "0"]) == 0
    assert len(seen) == 1 and tok.eos_id not in seen[0]
    assert tok.decode(seen[0]) == "User: tell me <eos> now\nAssistant:"
