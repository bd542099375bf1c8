"""The span model learns on a small slice with a tiny base (full and LoRA), and a run
directory opens again with the same answers."""

from __future__ import annotations

import json

import pytest
from qa_synth import synthetic_squad

from lmlab.tasks.qa import load_run, train_run
from lmlab.tasks.qa.data import read_squad
from lmlab.tasks.qa.metrics import score_answers
from tiny_hf import save_tiny

pytestmark = pytest.mark.slow  # fine-tunes a tiny model (about 30 s of CPU)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("qa")
    save_tiny("llama", d / "base")
    return d


def config(d, base, **train):
    return {
        "task": {"kind": "qa", "data": {"train": str(synthetic_squad(d / "train.json", 160, 1)),
                                        "test": str(synthetic_squad(d / "test.json", 40, 2))},
                 "max_len": 112, "stride": 16, "max_answer_tokens": 8},
        "init": {"source": str(base)},
        "train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "head_lr": 3e-3, "warmup": 5,
                  "val_questions": 0, "eval_every": 12, "n_boot": 100, **train},
    }  # fmt: skip


def test_span_model_learns_and_reloads(tiny):
    run, reports = train_run(config(tiny, tiny / "base"), tiny / "full", progress=False)
    hist = [json.loads(x) for x in (tiny / "full" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["train_loss"] < 0.6 * hist[0]["train_loss"]  # the loss falls
    train = read_squad(tiny / "train.json")[:60]
    _, preds = run.evaluate(train, n_boot=0)
    learned = score_answers(preds, [e.answer_texts for e in train], "squad", 0).f1
    # the trivial baseline: the passage's first word
    trivial = score_answers([e.context.split()[0] for e in train],
                            [e.answer_texts for e in train], "squad", 0).f1  # fmt: skip
    assert learned > trivial + 30, (learned, trivial)
    assert reports["test"].n == 40 and reports["test"].f1 > trivial + 30
    for name in ("config.toml", "tokenizer.json", "model.safetensors", "qa_head.safetensors",
                 "results.json", "card.md", "learning_curve.png"):  # fmt: skip
        assert (tiny / "full" / name).is_file(), name
    again = load_run(tiny / "full")
    assert again.kind == "qa"
    ctx = train[0].context
    a, b = (
        run.answer("What is the code?", ctx, top=2),
        again.answer("What is the code?", ctx, top=2),
    )
    assert [x["text"] for x in a] == [x["text"] for x in b]
    assert a[0]["score"] == pytest.approx(b[0]["score"], abs=1e-3)
    assert ctx[a[0]["start"] : a[0]["end"]] == a[0]["text"]
    assert set(a[0]) == {"text", "start", "end", "score"} and 0 < a[0]["score"] <= 1


def test_lora_run_saves_adapters_and_head_only(tiny):
    cfg = config(tiny, tiny / "base", max_steps=6, eval_every=6)
    cfg["init"]["lora"] = {"rank": 4}
    run, _ = train_run(cfg, tiny / "lora", progress=False)
    files = {p.name for p in (tiny / "lora").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "qa_head.safetensors"} <= files
    assert "model.safetensors" not in files
    toml = (tiny / "lora" / "config.toml").read_text()
    assert "fingerprint" in toml and "[init.lora]" in toml
    again = load_run(tiny / "lora")
    ctx = read_squad(tiny / "test.json")[0].context
    assert (
        again.answer("What is the code?", ctx)[0]["text"]
        == run.answer("What is the code?", ctx)[0]["text"]
    )


def test_frozen_cache_and_bidirectional_top_learn_and_reload(tiny):
    cfg = config(tiny, tiny / "base")
    cfg["task"].update(freeze_layers=1, bidirectional=1)
    run, reports = train_run(cfg, tiny / "bi", progress=False)
    results = json.loads((tiny / "bi" / "results.json").read_text())
    assert results["frozen_cache_seconds"] > 0  # the frozen block ran once
    train = read_squad(tiny / "train.json")[:60]
    _, preds = run.evaluate(train, n_boot=0)
    learned = score_answers(preds, [e.answer_texts for e in train], "squad", 0).f1
    trivial = score_answers([e.context.split()[0] for e in train],
                            [e.answer_texts for e in train], "squad", 0).f1  # fmt: skip
    assert learned > trivial + 30, (learned, trivial)
    again = load_run(tiny / "bi")
    assert again.model.bidirectional == 1
    ctx = train[0].context
    assert run.answer("What is the code?", ctx, top=2) == again.answer(
        "What is the code?", ctx, top=2
    )
