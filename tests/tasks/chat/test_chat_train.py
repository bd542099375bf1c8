"""Chat fine-tuning on a tiny base (a random llama made by ``transformers`` with a ChatML
template): a few steps lower the held-out response loss, LoRA adapters are saved in peft's
format and merged logits equal the unmerged ones, and the run opens as an ordinary lmlab
run that chats with its template."""

from __future__ import annotations

import json

import pytest
import torch
from chat_synth import conversations, write_jsonl

from lmlab.run import load_run as load_lm_run
from lmlab.tasks.chat import train_run
from lmlab.tasks.chat.evaluate import evaluate_chat
from tiny_hf import save_tiny

pytestmark = pytest.mark.slow  # fine-tunes a tiny model twice (about 20 s of CPU)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("chat")
    save_tiny("llama", d / "base")
    write_jsonl(d / "train.jsonl", conversations(96, 1))
    write_jsonl(d / "val.jsonl", conversations(16, 2))
    return d


def config(d, **init):
    return {
        "task": {"kind": "chat", "max_len": 128,
                 "data": {"train": str(d / "train.jsonl"), "validation": str(d / "val.jsonl")}},
        "init": {"source": str(d / "base"), **init},
        "train": {"epochs": 3, "batch_size": 8, "lr": 3e-3, "warmup": 4, "eval_every": 12,
                  "bf16": False},
    }  # fmt: skip


def test_full_fine_tuning_lowers_held_out_response_loss(tiny):
    run, figures = train_run(config(tiny), tiny / "full", progress=False)
    v = figures["validation"]
    assert v["loss"] < 0.7 * v["base_loss"], v
    hist = [json.loads(x) for x in (tiny / "full" / "metrics.jsonl").read_text().splitlines()]
    assert hist[0]["step"] == 0 and min(h["val_loss"] for h in hist) < hist[0]["val_loss"]
    for name in ("config.toml", "tokenizer.json", "model.safetensors", "chat_template.json",
                 "results.json", "card.md", "learning_curve.png"):  # fmt: skip
        assert (tiny / "full" / name).is_file(), name
    # an ordinary run: lmlab.run.load_run opens it, and its template answers a chat
    lm = load_lm_run(tiny / "full")
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(lm.model(ids), run.model(ids))
    reply = run.reply([{"role": "user", "content": "What is the fox like?"}], max_new_tokens=8)
    assert isinstance(reply, str)
    rep = evaluate_chat(run, conversations(6, 5), "synthetic", max_new_tokens=6)
    assert rep.ppl < rep.base_ppl and rep.conversations == 6
    assert set(rep.distinct) == {"tuned", "base", "reference"} and len(rep.examples) == 6


def test_lora_adapters_in_peft_format_merge_to_the_same_logits(tiny):
    from lmlab.tasks.chat.run import _model_from_base
    from lmlab.train.lora import ADAPTER_CONFIG_FILE, ADAPTER_FILE, PREFIX

    out = tiny / "lora"
    run, figures = train_run(config(tiny, lora={"rank": 4, "alpha": 8.0}), out, progress=False)
    assert figures["validation"]["loss"] < figures["validation"]["base_loss"]
    assert not (out / "model.safetensors").exists()
    from safetensors.torch import load_file

    keys = list(load_file(str(out / ADAPTER_FILE)))
    assert keys and all(k.startswith(PREFIX) and ".lora_" in k for k in keys)
    cfg = json.loads((out / ADAPTER_CONFIG_FILE).read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4
    # unmerged: the base wrapped by peft with the saved adapters; merged: the run as loaded
    _, _, peft_model, _, lora = _model_from_base(dict(run.config["init"]))
    lora.load(out, peft_model)
    peft_model.eval()
    base = run.base_model()
    ids = torch.randint(0, 300, (2, 24))
    with torch.no_grad():
        unmerged, merged, plain = peft_model(ids), load_lm_run(out).model(ids), base(ids)
    assert torch.allclose(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(merged, plain, atol=1e-3)  # the adapters did change the model
