"""Hugging Face checkpoints: tiny models made by ``transformers`` here -> lmlab gives the same
logits, ids and chat prompts; lmlab runs -> exported folders that ``transformers`` loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmlab.cli import main
from lmlab.run import load_run
from tiny_hf import save_tiny, train_bpe_runs

transformers = pytest.importorskip("transformers", reason="transformers is a test extra")

PROMPT = "The quick brown fox jumps over the lazy dog. 12345 colours, 你好!"


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("tie", [True, False])
def test_import_gives_transformers_logits(tmp_path: Path, kind: str, tie: bool) -> None:
    model, tok = save_tiny(kind, tmp_path / "hf", tie=tie)
    run = load_run(tmp_path / "hf")
    ids = tok.encode(PROMPT, add_special_tokens=False)
    assert run.tokenizer.encode(PROMPT) == ids
    assert run.tokenizer.decode(ids) == PROMPT
    x = torch.tensor([ids])
    with torch.no_grad():
        ref, ours = model(x).logits, run.model(x)
    assert (ref - ours).abs().max().item() < 1e-4
    assert run.model.config.tie_embeddings == tie


def test_import_renders_the_chat_template_as_transformers_does(tmp_path: Path) -> None:
    from lmlab.serve.chat_template import load_chat_template

    _, tok = save_tiny("llama", tmp_path / "hf")
    run = load_run(tmp_path / "hf")
    template = load_chat_template(run.path, run.config)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi {there}"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ]
    ref = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert template.render(messages) == ref
    assert template.stop == []  # the reply ends at the end-of-turn token instead
    assert run.tokenizer.eos_id == tok.convert_tokens_to_ids("<|im_end|>")


def test_import_writes_a_run_directory_every_command_takes(tmp_path: Path) -> None:
    model, tok = save_tiny("llama", tmp_path / "hf")
    out = tmp_path / "run"
    assert main(["import", str(tmp_path / "hf"), "--out", str(out)]) == 0
    for name in (
        "config.toml",
        "tokenizer.json",
        "model.safetensors",
        "chat_template.json",
        "card.md",
    ):
        assert (out / name).is_file(), name
    run = load_run(out)
    x = torch.tensor([tok.encode(PROMPT, add_special_tokens=False)])
    with torch.no_grad():
        assert (model(x).logits - run.model(x)).abs().max().item() < 1e-4
    assert "imported from **hf**" in (out / "card.md").read_text()
    # greedy generation equals transformers' own, token for token
    from lmlab.generate import SamplingParams, generate

    params = SamplingParams(max_new_tokens=12, temperature=0.0, ignore_eos=True)
    ours = generate(run.model, run.tokenizer, PROMPT, params)[0].token_ids
    ref = model.generate(x, max_new_tokens=12, do_sample=False, min_new_tokens=12)
    assert ours == ref[0, x.shape[1] :].tolist()


@pytest.fixture(scope="module")
def bpe_runs(tmp_path_factory) -> dict[str, Path]:
    return train_bpe_runs(tmp_path_factory.mktemp("lmruns"))


@pytest.mark.parametrize("block", ["llama", "gpt2"])
def test_export_hf_loads_in_transformers_with_the_same_logits(
    bpe_runs: dict[str, Path], tmp_path: Path, block: str
) -> None:
    run = load_run(bpe_runs[block])
    out = tmp_path / "hf"
    assert main(["export", "--run", str(bpe_runs[block]), "--format", "hf", "--out", str(out)]) == 0
    model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    tok = transformers.AutoTokenizer.from_pretrained(out)
    ids = run.tokenizer.encode(PROMPT)
    assert tok.encode(PROMPT, add_special_tokens=False) == ids
    x = torch.tensor([ids])
    with torch.no_grad():
        assert (model(x).logits - run.model(x)).abs().max().item() < 1e-4
    # and back again: the exported folder imports to the same model
    again = load_run(out)
    with torch.no_grad():
        assert (again.model(x) - run.model(x)).abs().max().item() < 1e-5


def test_export_refuses_to_overwrite_and_non_transformers(
    bpe_runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = main(["export", "--run", str(bpe_runs["llama"]), "--format", "hf", "--out", str(out)])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine" and not (out / "config.json").exists()


@pytest.mark.parametrize("fmt", ["hf", "gguf"])
def test_qwen2_exports_back_to_its_own_architecture(tmp_path: Path, fmt: str) -> None:
    model, tok = save_tiny("qwen2", tmp_path / "src")
    out = tmp_path / ("out" if fmt == "hf" else "out.gguf")
    args = ["export", "--run", str(tmp_path / "src"), "--format", fmt, "--out", str(out)]
    assert main([*args, "--dtype", "f32"]) == 0
    again = load_run(out)
    assert again.config["source"]["architecture"] == "qwen2"
    x = torch.tensor([tok.encode(PROMPT, add_special_tokens=False)])
    with torch.no_grad():
        assert (model(x).logits - again.model(x)).abs().max().item() < 1e-4
    if fmt == "hf":
        ref = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
        assert type(ref).__name__ == "Qwen2ForCausalLM"
        with torch.no_grad():
            assert (ref(x).logits - again.model(x)).abs().max().item() < 1e-4
