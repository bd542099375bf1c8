"""``lmlab quantize`` end to end on a real (tiny, trained here) run: the run directory it
writes, every command that takes a run computing with the quantised weights, bad input."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from lmlab.cli import main
from lmlab.errors import LmlabError
from lmlab.quantize.modules import QuantEmbedding, QuantLinear
from lmlab.run import load_run

TINY = ["--steps", "120", "--batch-size", "8", "--context", "64", "--eval-every", "120",
        "--set", "train.eval_batches=2", "--set", "train.sample_tokens=20"]  # fmt: skip
PROMPT = "Shall I compare thee"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A float run (llama block, width 128, 2 layers, characters of the sonnets) and its
    int8 and int4 g32 quantisations."""
    root = tmp_path_factory.mktemp("quant_runs")
    out = {"fp32": root / "fp32", "int8": root / "int8", "int4": root / "int4"}
    assert main(["train", "--out", str(out["fp32"]), "--corpus", "builtin:shakespeare-sonnets",
                 *TINY, "--depth", "2", "--block", "llama"]) == 0  # fmt: skip
    assert main(["quantize", "--run", str(out["fp32"]), "--to", "int8",
                 "--out", str(out["int8"])]) == 0  # fmt: skip
    assert main(["quantize", "--run", str(out["fp32"]), "--to", "int4", "--group-size", "32",
                 "--out", str(out["int4"])]) == 0  # fmt: skip
    return out


def test_the_run_directory_holds_quantised_tensors_and_the_scheme(runs) -> None:
    from lmlab.config import load_toml

    for name, bits, qdtype in (("int8", 8, "I8"), ("int4", 4, "U8")):
        cfg = load_toml(runs[name] / "config.toml")
        q = cfg["quantization"]
        assert q["bits"] == bits and q["symmetric"] == (bits == 8) and q["embeddings"]
        assert q["embedding_bits"] == 8
        assert q["group_size"] == (0 if bits == 8 else 32)
        assert (runs[name] / "tokenizer.json").is_file() and (runs[name] / "card.md").is_file()
        assert (runs[name] / "data" / "meta.json").is_file()  # the prepared split, linked
        with safe_open(str(runs[name] / "model.safetensors"), "pt") as f:
            keys = set(f.keys())
            assert "blocks.0.attn.qkv.qweight" in keys and "tok_emb.qweight" in keys
            assert str(f.get_slice("tok_emb.qweight").get_dtype()) == "I8"
            assert not any(k.endswith(".weight") and "ln" not in k for k in keys), keys
            assert str(f.get_slice("blocks.1.mlp.gate_up.qweight").get_dtype()) == qdtype
            assert str(f.get_slice("blocks.1.mlp.gate_up.scales").get_dtype()) == "F16"
            assert ("blocks.0.attn.proj.zeros" in keys) == (bits == 4)
    fp32 = (runs["fp32"] / "model.safetensors").stat().st_size
    assert (runs["int8"] / "model.safetensors").stat().st_size < 0.3 * fp32
    assert (runs["int4"] / "model.safetensors").stat().st_size < 0.25 * fp32


@pytest.mark.parametrize("name", ["int8", "int4"])
def test_loading_does_not_materialise_float_weights(name, runs) -> None:
    model = load_run(runs[name]).model
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == []  # every linear layer is a QuantLinear
    assert isinstance(model.tok_emb, QuantEmbedding) and isinstance(model.head, QuantLinear)
    assert model.head.w is model.tok_emb.w  # the tied head shares the quantised table
    for b in model.blocks:
        assert isinstance(b.attn.qkv, QuantLinear) and isinstance(b.mlp.gate_up, QuantLinear)
        assert b.attn.qkv.w.dtype == (torch.int8 if name == "int8" else torch.uint8)
    # float tensors left: norm gains and biases (1-D) and the RoPE tables (positions)
    for pname, p in model.named_parameters():
        assert p.ndim == 1, pname
    # the decoding kernel reads the layers' own memory (one stacked tensor per kind)
    from lmlab.generate.fastdecode import fast_decoder

    fast = fast_decoder(model, True)
    # int4 layers, with the embedding and tied head in int8 per channel (the default)
    assert fast.kinds == ("I8",) * 5 if name == "int8" else ("Q4",) * 4 + ("I8",)
    assert model.tok_emb.bits == 8
    for i, b in enumerate(model.blocks):
        assert np.shares_memory(fast.qkv[0][i], b.attn.qkv.w.numpy())
        assert np.shares_memory(fast.fc[0][i], b.mlp.gate_up.w.numpy())
    float_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    quant_bytes = sum(m.nbytes for m in model.modules() if isinstance(m, QuantLinear))
    assert float_bytes < 0.05 * quant_bytes


def _logits(run_dir: Path, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return load_run(run_dir).model(ids)[0].double()


def test_quantised_logits_are_close_to_the_float_models(runs) -> None:
    tok = load_run(runs["fp32"]).tokenizer
    text = "From fairest creatures we desire increase, That thereby beauty's rose might never die"
    ids = torch.tensor([tok.encode(text)[:64]])
    ref = _logits(runs["fp32"], ids)
    lp_ref = ref.log_softmax(-1)
    for name, rel_bound, kl_bound in (("int8", 0.02, 1e-3), ("int4", 0.15, 0.03)):
        got = _logits(runs[name], ids)
        rel = ((got - ref).norm() / ref.norm()).item()
        kl = (lp_ref.exp() * (lp_ref - got.log_softmax(-1))).sum(-1).mean().item()
        assert rel < rel_bound and kl < kl_bound, (name, rel, kl)


@pytest.mark.parametrize("name", ["int8", "int4"])
def test_generate_greedy_through_the_cli_is_the_engines_output(name, runs, capsys) -> None:
    from lmlab.generate import SamplingParams, generate

    args = ["generate", "--run", str(runs[name]), "--prompt", PROMPT, "--temperature", "0",
            "--max-new-tokens", "24", "--seed", "0"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    run = load_run(runs[name])
    params = SamplingParams(max_new_tokens=24, temperature=0)
    with torch.inference_mode():
        fast = generate(run.model, run.tokenizer, PROMPT, params, fast_decode=True)[0]
        slow = generate(run.model, run.tokenizer, PROMPT, params, fast_decode=False)[0]
    # the fused kernel and PyTorch's layers compute the same model
    assert fast.token_ids == slow.token_ids and len(fast.token_ids) == 24
    assert len(set(fast.token_ids)) > 3 and fast.text in printed


def test_eval_chat_lab_probe_and_serve_load_a_quantised_run(runs, tmp_path, capsys, monkeypatch):
    q = str(runs["int4"])
    corpus = tmp_path / "c.txt"
    corpus.write_text("Shall I compare thee to a summer's day? Thou art more lovely. " * 8)
    assert main(["eval", "--run", q, "--file", str(corpus)]) == 0
    assert main(["eval", "--run", str(runs["fp32"]), "--file", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert out.count("perplexity") >= 2
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello there\n"))
    assert main(["chat", "--run", q, "--max-new-tokens", "8", "--temperature", "0"]) == 0
    report = tmp_path / "probe"
    assert main(["lab", "probe", "--run", q, "--windows", "4", "--repeats", "2",
                 "--out", str(report)]) == 0  # fmt: skip
    assert json.loads((report / "probe.json").read_text())["family"] == "transformer"

    import httpx

    from lmlab.serve.app import create_app
    from lmlab.serve.limits import ServeSettings
    from lmlab.serve.registry import load_registry
    from lmlab.serve.server import BackgroundServer

    registry = load_registry([f"q={q}"])
    assert isinstance(registry.get("q").run.model.blocks[0].attn.qkv, QuantLinear)
    with BackgroundServer(create_app(registry, ServeSettings(max_tokens=16))) as srv:
        r = httpx.post(
            srv.url + "/v1/completions",
            json={"model": "q", "prompt": PROMPT, "max_tokens": 8, "temperature": 0},
            timeout=60,
        )
    registry.close()
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"]


def test_bad_input_is_one_line_exit_2_and_nothing_is_overwritten(runs, tmp_path, capsys) -> None:
    src = str(runs["fp32"])
    before = (runs["int4"] / "model.safetensors").read_bytes()
    cases = [
        (["--run", str(runs["int4"]), "--to", "int4", "--out", str(tmp_path / "a")],
         "already quantised"),
        (["--run", src, "--to", "int4", "--out", str(runs["int4"])], "already exists"),
        (["--run", src, "--to", "int4", "--group-size", "256", "--out", str(tmp_path / "b")],
         "unsupported group size 256"),
        (["--run", src, "--to", "int8", "--group-size", "32", "--out", str(tmp_path / "c")],
         "per output channel"),
        (["--run", str(tmp_path / "nope"), "--to", "int8", "--out", str(tmp_path / "d")],
         "not found"),
    ]  # fmt: skip
    for args, message in cases:
        capsys.readouterr()
        assert main(["quantize", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert (runs["int4"] / "model.safetensors").read_bytes() == before
    assert not any((tmp_path / n).exists() for n in "abcd")
    with pytest.raises(SystemExit):  # argparse: an unknown scheme
        main(["quantize", "--run", src, "--to", "int3", "--out", str(tmp_path / "e")])


def test_a_width_not_divisible_by_the_group_size_is_refused(tmp_path, capsys) -> None:
    run = tmp_path / "w64"
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                "--corpus",
                "builtin:shakespeare-sonnets",
                *TINY,
                "--depth",
                "1",
                "--steps",
                "2",
            ]
        )
        == 0
    )  # fmt: skip  (width 64)
    capsys.readouterr()
    code = main(["quantize", "--run", str(run), "--to", "int4", "--group-size", "128",
                 "--out", str(tmp_path / "q")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "not divisible by the group size 128" in err
    assert not (tmp_path / "q").exists()
    rnn = tmp_path / "rnn"  # only Transformers have linear layers to quantise
    assert main(["train", "--out", str(rnn), "--corpus", "builtin:shakespeare-sonnets", *TINY,
                 "--steps", "2", "--model", "rnn", "--set", "model.embed_dim=8",
                 "--set", "model.hidden_size=16"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["quantize", "--run", str(rnn), "--to", "int8", "--out", str(tmp_path / "r")]) == 2
    assert "only Transformer runs can be quantised" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_corrupt_quantised_file_is_a_one_line_error(runs, tmp_path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(runs["int4"], bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(LmlabError, match="corrupt or truncated"):
        load_run(bad)
    # a tensor missing from an intact file
    from safetensors.torch import load_file, save_file

    t = load_file(str(runs["int4"] / "model.safetensors"))
    del t["blocks.1.attn.proj.scales"]
    save_file(t, str(bad / "model.safetensors"))
    with pytest.raises(LmlabError, match=r"lacks the quantised tensors of blocks\.1\.attn\.proj"):
        load_run(bad)


def test_info_counts_and_export_writes_the_dequantised_model(runs, tmp_path) -> None:
    """A quantised run reports the float model's parameter count, and ``lmlab export``
    writes its dequantised weights: the exported model computes what the quantised one does."""
    q = load_run(runs["int4"])
    assert q.model.num_params() == load_run(runs["fp32"]).model.num_params()
    out = tmp_path / "hf"
    assert main(["export", "--run", str(runs["int4"]), "--format", "hf", "--out", str(out)]) == 0
    assert (out / "model.safetensors").is_file()
    from lmlab.models import Transformer

    tensors = q.model.tensors_for_save()  # what export and fine-tuning read
    assert all(t.dtype == torch.float32 for t in tensors.values())
    flt = Transformer.from_tensors(q.model.config, tensors).eval()
    ids = torch.tensor([q.tokenizer.encode("Shall I compare thee to a summer's day?")])
    with torch.inference_mode():
        ref, got = q.model(ids), flt(ids)
    assert (got - ref).abs().max().item() < 1e-4 * ref.abs().max().item()


def test_int4_embedding_bits_and_keep_embeddings(runs, tmp_path) -> None:
    """``--embedding-bits 4`` puts the embedding and tied head in int4 too (smaller, less
    exact); ``--keep-embeddings`` leaves them float, the head tied to the float table."""
    src = str(runs["fp32"])
    a, b = tmp_path / "e4", tmp_path / "keep"
    assert main(["quantize", "--run", src, "--to", "int4", "--embedding-bits", "4",
                 "--out", str(a)]) == 0  # fmt: skip
    assert main(["quantize", "--run", src, "--to", "int4", "--keep-embeddings",
                 "--out", str(b)]) == 0  # fmt: skip
    e4, keep = load_run(a).model, load_run(b).model
    assert e4.tok_emb.bits == 4 and e4.head.w is e4.tok_emb.w
    assert isinstance(keep.tok_emb, torch.nn.Embedding) and keep.head.weight is keep.tok_emb.weight
    assert (a / "model.safetensors").stat().st_size < (
        runs["int4"] / "model.safetensors"
    ).stat().st_size
