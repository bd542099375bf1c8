"""The pretrained-Transformer classifiers: ``lm`` (head + full or LoRA fine-tuning) and
``prompt`` (label-word likelihoods), on tiny ``transformers``-made bases and real data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmlab.errors import LmlabError
from lmlab.tasks.classify import load_run, train_run
from lmlab.tasks.classify.batches import encode_texts, pad
from lmlab.tasks.data import Examples
from lmlab.tasks.prompting import draw_demonstrations, render_prefix, resolve_prompt
from shared_data import shared_file
from tiny_hf import require_smollm2, save_tiny

pytest.importorskip("peft", reason="peft is a test extra (LoRA)")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny") / "llama"
    save_tiny("llama", folder, seed=3)
    return str(folder)


@pytest.fixture(scope="module")
def agnews_slice(tmp_path_factory) -> dict:
    """1,200 AG News descriptions to train on, 300 others held out (4 classes: chance 25%)."""
    lines = shared_file("agnews", "dev.tsv").read_text(encoding="utf-8").splitlines()
    d = tmp_path_factory.mktemp("agnews")
    (d / "train.tsv").write_text("\n".join(lines[:1200]) + "\n", encoding="utf-8")
    (d / "test.tsv").write_text("\n".join(lines[-300:]) + "\n", encoding="utf-8")
    return {"train": str(d / "train.tsv"), "test": str(d / "test.tsv"), "text_column": 0,
            "label_column": 1}  # fmt: skip


def _train(data: dict, base: str, out: Path, lora: bool, pooling: str = "mean", **train) -> tuple:
    # A random tiny base over near-byte tokens: mean pooling learns fastest from it.
    model = {"family": "lm", "bf16": False, "head_init": "random", "dropout": 0.0,
             "pooling": pooling}  # fmt: skip
    if lora:
        model["lora"] = {"rank": 8, "alpha": 16.0}
    cfg = {
        "task": {"data": data, "base": base},
        "model": model,
        "train": {"epochs": 5, "batch_size": 32, "lr": 3e-3, "threads": 1, "n_boot": 50,
                  "max_len": 64, "patience": 0, "eval_every": 0, "warmup": 0, **train},
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # texts cut to max_len
        return train_run(cfg, out, progress=False, log=lambda s: None)


def test_lm_full_fine_tuning_learns_and_stands_alone(agnews_slice, base, tmp_path) -> None:
    run, reports = _train(agnews_slice, base, tmp_path / "full", lora=False)
    assert reports["test"].n == 300
    # Above chance (0.25) beyond the 95% interval: a random 2-layer base reading bytes.
    assert reports["test"].intervals["accuracy"][0] > 0.27, reports["test"].format()
    assert (tmp_path / "full" / "model.safetensors").is_file()
    # Fully fine-tuned, the run holds every weight: it opens with its base gone.
    Path(base).rename(Path(base).with_name("moved"))
    try:
        again = load_run(tmp_path / "full")
    finally:
        Path(base).with_name("moved").rename(base)
    texts = ["Stocks fell sharply as oil prices rose.", "The striker scored twice in the final."]
    np.testing.assert_allclose(again.predict_proba(texts), run.predict_proba(texts), atol=1e-5)
    pieces, scores, target = again.explain(texts[0], "grad")
    assert len(pieces) == len(scores) > 5 and 0 <= target < 4


def test_lora_adapters_reload_to_identical_predictions(agnews_slice, base, tmp_path) -> None:
    run, reports = _train(
        agnews_slice, base, tmp_path / "lora", lora=True, epochs=1, lr=5e-3, pooling="last"
    )
    model = run.model
    trainable = model.num_params(trainable_only=True)
    assert 0 < trainable < model.num_params() / 2  # adapters and head only
    saved = set(
        __import__("safetensors.torch").torch.load_file(tmp_path / "lora" / "model.safetensors")
    )
    assert saved and all("lora_" in k or k.startswith("head.") for k in saved)
    texts = ["Shares of the chip maker rose after earnings.", "Rebels attacked the capital.",
             "The team won the championship."]  # fmt: skip
    reopened = load_run(tmp_path / "lora")
    np.testing.assert_array_equal(reopened.predict_proba(texts), run.predict_proba(texts))
    # The adapters changed the model: without them the predictions differ.
    cfg = dict(reopened.config["model"])
    assert cfg["lora"]["targets"]
    # A LoRA run needs its base: gone, a one-line error.
    Path(base).rename(Path(base).with_name("gone"))
    try:
        with pytest.raises(LmlabError, match="base model .* is gone"):
            load_run(tmp_path / "lora")
    finally:
        Path(base).with_name("gone").rename(base)


def _prompt_run(base: str, tmp_path: Path, words: list[str], shots: int = 0):
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    rows = ["text\tlabel"] + [
        f"the fox jumps over the lazy dog {i}\t{'ab'[i % 2]}" for i in range(40)
    ]
    (d / "train.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = {
        "task": {"data": {"train": str(d / "train.tsv")}, "base": base},
        "model": {"family": "prompt", "bf16": False, "label_words": words, "shots": shots,
                  "template": "Q: {text}\nA:"},
        "train": {"n_boot": 10},
    }  # fmt: skip
    return train_run(cfg, tmp_path / f"prompt{shots}", progress=False, log=lambda s: None)[0]


@pytest.mark.parametrize("words", [["quick", "lazy"], ["quick brown", "dozen jugs"]])
def test_prompt_scores_are_label_word_log_likelihoods(base, tmp_path, words) -> None:
    """By hand: the language model's own log-probabilities of each label word's tokens after
    the prompt, summed; the cached prefix changes nothing."""
    run = _prompt_run(base, tmp_path, words, shots=2)
    assert not (tmp_path / "prompt2" / "model.safetensors").exists()  # nothing trained
    model, tok = run.model, run.tokenizer
    texts = ["the dog jumps", "five dozen liquor jugs"]
    enc = run.encode(texts)
    ids, mask = pad(enc, model.pad_id)
    with torch.inference_mode():
        cached = model(ids, mask)  # through the prefix's KV cache
    uncached = model.classify(model.embed(ids), mask).detach()
    lm = model.lm
    for i, seq in enumerate(enc):
        for c, w in enumerate(words):
            wt = tok.encode(" " + w)
            full = torch.tensor([list(seq) + list(wt)])
            with torch.inference_mode():
                logp = F.log_softmax(lm(full)[0].float(), dim=-1)
            want = sum(float(logp[len(seq) - 1 + j, t]) for j, t in enumerate(wt))
            assert float(uncached[i, c]) == pytest.approx(want, abs=1e-4)
            assert float(cached[i, c]) == pytest.approx(want, abs=1e-4)
    # The demonstrations are in the prompt, each followed by its label word.
    prefix = model.config.prefix
    assert prefix.count("Q: ") == 2 and prefix.count("\nA: ") == 2
    reopened = load_run(tmp_path / "prompt2")
    np.testing.assert_allclose(reopened.predict_proba(texts), run.predict_proba(texts), atol=1e-6)


def test_demonstrations_are_balanced_and_seeded() -> None:
    ex = Examples([f"t{i}" for i in range(30)], ["x"] * 20 + ["y"] * 5 + ["z"] * 5)
    for k in (1, 4, 8):
        demos = draw_demonstrations(ex, ["x", "y", "z"], k, seed=7)
        counts = [sum(lab == c for _, lab in demos) for c in "xyz"]
        assert len(demos) == k and max(counts) - min(counts) <= 1
        assert demos == draw_demonstrations(ex, ["x", "y", "z"], k, seed=7)
    assert draw_demonstrations(ex, ["x", "y", "z"], 8, 8) != draw_demonstrations(
        ex, ["x", "y", "z"], 8, 7
    )
    spec = resolve_prompt("sst2", ["negative", "positive"])
    text = render_prefix(spec, ["negative", "positive"], [("a fine film", "positive")])
    assert text.endswith("Review: a fine film\nSentiment: positive\n\n")
    with pytest.raises(LmlabError, match="label words for 2 labels"):
        resolve_prompt("sst2", ["negative", "positive"], label_words=["good"])
    with pytest.raises(LmlabError, match=r"\{text\}"):
        resolve_prompt("x", ["a", "b"], template="no slot")


def test_template_cut_keeps_the_cue(base) -> None:
    from lmlab.train.finetune import read_base

    tok = read_base(base).tokenizer
    long = "quick brown fox " * 40
    ids, cut = encode_texts(tok, [long, "dog"], 10, "Q: {text}\nA:", "Intro.\n")
    assert cut == 1
    tail = tok.decode(ids[0][-6:].tolist())
    assert tail.endswith("\nA:") and tok.decode(ids[0].tolist()).startswith("Intro.\nQ: ")


@pytest.mark.slow
def test_smollm2_zero_shot_sst2(tmp_path) -> None:
    """SmolLM2-135M-Instruct, zero-shot, on 50 SST-2 test sentences: above chance."""
    require_smollm2()
    lines = shared_file("sst2", "test.tsv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "t.tsv").write_text("\n".join(lines[:51]) + "\n", encoding="utf-8")
    data = {"train": str(tmp_path / "t.tsv"), "validation": str(tmp_path / "t.tsv"),
            "test": str(tmp_path / "t.tsv"), "text_column": "sentence", "label_column": "label"}  # fmt: skip
    cfg = {"task": {"data": data, "base": "builtin:smollm2"},
           "model": {"family": "prompt", "label_words": ["negative", "positive"],
                     "template": "Review: {text}\nSentiment:",
                     "instruction": "Classify the sentiment of each movie review as positive or negative.\n\n"},
           "train": {"n_boot": 10}}  # fmt: skip
    torch.set_num_threads(1)
    run, reports = train_run(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    assert reports["test"].n == 50
    assert reports["test"].accuracy >= 0.62, reports["test"].format()


def test_cli_refuses_contradictory_options(tmp_path, capsys) -> None:
    from lmlab.cli import main

    base_args = ["task", "train", "classify", "--data", "sst2", "--out", str(tmp_path / "r")]
    cases = [
        (["--model", "lm"], "needs --base"),
        (["--model", "textcnn", "--lora"], "--lora is for --model lm or prompt"),
        (["--model", "prompt", "--base", "x", "--lora"], "--lora is for --model lm"),
        (["--model", "lm", "--base", "x", "--shots", "4"], "--shots is for --model prompt"),
    ]
    for extra, message in cases:
        assert main(base_args + extra) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
