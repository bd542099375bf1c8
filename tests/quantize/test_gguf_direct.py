"""GGUF Q4_0 / Q4_1 / Q8_0 tensors opened as lmlab's quantised matrices with no float round
trip (``--quantized``), and ``lmlab quantize`` from a GGUF file writing the blocks as they
are: on tiny GGUF files written here (a random Llama / GPT-2 from ``transformers``, exported
by lmlab, its tensors quantised by the ``gguf`` package)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.cli import main
from lmlab.quantize.modules import QuantEmbedding, QuantLinear
from lmlab.run import load_run

gguf = pytest.importorskip("gguf", reason="needs the gguf package")
Q = gguf.GGMLQuantizationType
PROMPT = "The quick brown fox jumps over the lazy dog, and the cat sat on the mat. 12345"
# a mix in every matrix kind: Q4_0 and Q4_1 in one query-key-value matrix, Q8_0 blocks
LLAMA_TYPES = {"token_embd": Q.Q8_0, "attn_q": Q.Q4_0, "attn_k": Q.Q4_0, "attn_v": Q.Q4_1,
               "attn_output": Q.Q4_1, "ffn_gate": Q.Q4_0, "ffn_up": Q.Q4_0,
               "ffn_down": Q.Q8_0, "output": Q.Q4_1}  # fmt: skip
GPT2_TYPES = {"token_embd": Q.Q4_1, "attn_qkv": Q.Q4_0, "attn_output": Q.Q8_0,
              "ffn_up": Q.Q4_1, "ffn_down": Q.Q4_1, "output": Q.Q8_0}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def requantise(src: Path, dst: Path, type_of) -> Path:
    """Copy GGUF ``src`` (F32 tensors) to ``dst`` with each matrix in ``type_of(name)``'s
    type (None: kept as it is), quantised by the ``gguf`` package."""
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(f.name, f.contents(), f.types[0], sub_type=sub)
    for t in r.tensors:
        arr = np.asarray(t.data, np.float32).reshape(tuple(int(x) for x in reversed(t.shape)))
        qtype = type_of(t.name) if arr.ndim == 2 else None
        if qtype is None:
            w.add_tensor(t.name, np.ascontiguousarray(arr))
        elif qtype == Q.F16:
            w.add_tensor(t.name, arr.astype(np.float16))
        else:
            w.add_tensor(t.name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def by_part(types: dict, overrides: dict | None = None):
    def type_of(name: str):
        if overrides and name in overrides:
            return overrides[name]
        part = name.split(".")[-2]
        return types.get(part)

    return type_of


@pytest.fixture(scope="module")
def f32(tmp_path_factory) -> dict[str, Path]:
    """F32 GGUF files of a tiny random Llama (untied head: the head is a matrix of its
    own) and a tiny GPT-2 (tied)."""
    from tiny_hf import save_tiny

    root = tmp_path_factory.mktemp("gguf_direct")
    out = {}
    for kind, tie in (("llama", False), ("gpt2", True)):
        save_tiny(kind, root / kind, tie=tie)
        out[kind] = root / f"{kind}.gguf"
        assert main(["export", "--run", str(root / kind), "--format", "gguf", "--dtype", "f32",
                     "--out", str(out[kind])]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def mixed(f32) -> dict[str, Path]:
    """The same models with Q4_0, Q4_1 and Q8_0 matrices (see LLAMA_TYPES, GPT2_TYPES)."""
    return {
        "llama": requantise(f32["llama"], f32["llama"].with_name("llama-q.gguf"),
                            by_part(LLAMA_TYPES)),
        "gpt2": requantise(f32["gpt2"], f32["gpt2"].with_name("gpt2-q.gguf"), by_part(GPT2_TYPES)),
    }  # fmt: skip


def _matrices(model) -> dict[str, torch.nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear | QuantEmbedding)}


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_direct_mapping_gives_the_float_imports_weights_and_logits(mixed, arch) -> None:
    q, f = load_run(mixed[arch], quantized=True), load_run(mixed[arch])
    mats = _matrices(q.model)
    # every matrix quantised: the blocks, in the kernels' layout, no nn.Linear left
    assert not any(isinstance(m, torch.nn.Linear) for m in q.model.modules())
    assert isinstance(q.model.tok_emb, QuantEmbedding)
    for name, m in mats.items():
        ref = f.model.get_submodule(name).weight
        assert torch.equal(m.weight, ref), name  # exactly the dequantised file (RoPE rows too)
    if arch == "llama":
        qkv = q.model.blocks[0].attn.qkv
        assert qkv.kind == "Q4" and q.model.blocks[0].mlp.proj.kind == "Q8"
        assert q.model.tok_emb.kind == "Q8" and q.model.head.kind == "Q4"
    else:
        assert q.model.head.w is q.model.tok_emb.w  # tied: one table
    assert q.tokenizer.encode(PROMPT) == f.tokenizer.encode(PROMPT)
    ids = torch.tensor([f.tokenizer.encode(PROMPT)])
    assert ids.shape[1] > 16  # the prefill path: dequantised blocks and F.linear
    with torch.no_grad():
        a, b = q.model(ids), f.model(ids)
        assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())
        few = ids[:, :5]  # a few rows: the kernel's own product on the blocks
        a, b = q.model(few), f.model(few)
        assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())


def test_greedy_decoding_matches_the_float_model(mixed) -> None:
    from lmlab.generate import SamplingParams, generate
    from lmlab.generate.fastdecode import fast_decoder

    q, f = load_run(mixed["llama"], quantized=True), load_run(mixed["llama"])
    fast = fast_decoder(q.model, True)
    assert fast is not None and fast.kinds == ("Q4", "Q4", "Q4", "Q8", "Q4")
    ids = f.tokenizer.encode("Shall I compare thee")
    params = SamplingParams(max_new_tokens=12, temperature=0)
    fused = generate(q.model, q.tokenizer, ids, params, fast_decode=True)[0]  # the kernel
    torch_q = generate(q.model, q.tokenizer, ids, params, fast_decode=False)[0]
    ref = generate(f.model, f.tokenizer, ids, params, fast_decode=False)[0]
    assert fused.token_ids == torch_q.token_ids == ref.token_ids


def test_other_types_fall_back_to_float_for_that_kind_only(f32, tmp_path, capsys) -> None:
    path = requantise(f32["llama"], tmp_path / "f16.gguf",
                      by_part(LLAMA_TYPES, {"blk.1.ffn_down.weight": Q.F16}))  # fmt: skip
    capsys.readouterr()
    q, f = load_run(path, quantized=True), load_run(path)
    err = capsys.readouterr().err
    assert "warning: 2 matrices" in err and "F16 x1" in err and "read as float32" in err
    for b in q.model.blocks:  # the MLP's output matrix in float in every layer, the rest not
        assert type(b.mlp.proj) is torch.nn.Linear and isinstance(b.mlp.gate_up, QuantLinear)
    ids = torch.tensor([f.tokenizer.encode(PROMPT)])
    with torch.no_grad():
        assert torch.allclose(q.model(ids), f.model(ids), atol=1e-5, rtol=0)


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_input_one_line(f32, tmp_path, capsys) -> None:
    from tiny_hf import save_tiny

    capsys.readouterr()
    args = ["--prompt", "a", "--max-new-tokens", "2", "--quantized"]
    err = _one_line_error(capsys, main(["generate", "--run", str(f32["llama"]), *args]))
    assert "no Q4_0, Q4_1 or Q8_0 matrices" in err and "F32" in err
    save_tiny("llama", tmp_path / "hf")
    capsys.readouterr()
    err = _one_line_error(capsys, main(["generate", "--run", str(tmp_path / "hf"), *args]))
    assert "Hugging Face folder" in err
    run = tmp_path / "run"
    assert main(["import", str(f32["llama"]), "--out", str(run)]) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, main(["eval", "--run", str(run), "--file", str(tmp_path / "x"),
                                        "--quantized"]))  # fmt: skip
    assert "float run" in err and "lmlab quantize" in err


def test_commands_compute_on_the_blocks(mixed, tmp_path, capsys) -> None:
    text = tmp_path / "t.txt"
    text.write_text(PROMPT * 20, encoding="utf-8")
    out = {}
    for flag in ([], ["--quantized"]):
        assert main(["eval", "--run", str(mixed["llama"]), "--file", str(text), "--json",
                     *flag]) == 0  # fmt: skip
        out[bool(flag)] = capsys.readouterr().out
    import json

    a, b = (json.loads(out[k]) for k in (False, True))
    assert a["tokens"] == b["tokens"] > 300
    assert abs(a["ppl"] - b["ppl"]) <= 1e-5 * a["ppl"]
    gen = []
    for flag in ([], ["--quantized"]):
        assert main(["generate", "--run", str(mixed["llama"]), "--prompt", "Once upon",
                     "--temperature", "0", "--max-new-tokens", "10", *flag]) == 0  # fmt: skip
        gen.append(capsys.readouterr().out)
    assert gen[0] == gen[1]


def test_servers_open_quantized(mixed) -> None:
    from lmlab.interop.sources import open_quantized
    from lmlab.serve.registry import load_model

    with open_quantized():
        served = load_model(f"tiny={mixed['gpt2']}")
    assert isinstance(served.run.model.blocks[0].attn.qkv, QuantLinear)
    assert not isinstance(load_model(str(mixed["gpt2"])).run.model.head, QuantLinear)


@pytest.mark.parametrize(("symmetric", "qtype"), [(False, Q.Q4_1), (True, Q.Q4_0)])
def test_quantize_writes_the_blocks_as_they_are(f32, tmp_path, symmetric, qtype) -> None:
    """``lmlab quantize --to int4 --group-size 32`` of a Q4_1 (Q4_0) file: the file's blocks,
    byte for byte, the same tensors as re-quantising the float import (which recovers them),
    and the Q8_0 embedding re-quantised to int8 per channel as before."""
    from safetensors.torch import load_file

    from lmlab.quantize.runs import quantize_tensors
    from lmlab.quantize.scheme import Scheme

    types = {k: (qtype if v in (Q.Q4_0, Q.Q4_1) else v) for k, v in LLAMA_TYPES.items()}
    path = requantise(f32["llama"], tmp_path / "m.gguf", by_part(types))
    out = tmp_path / "q"
    flag = "--symmetric" if symmetric else "--asymmetric"
    assert main(["quantize", "--run", str(path), "--to", "int4", "--group-size", "32", flag,
                 "--out", str(out)]) == 0  # fmt: skip
    new = load_file(str(out / "model.safetensors"))
    scheme = Scheme(4, 32, symmetric)
    old = quantize_tensors(load_run(path).model, scheme, progress=False)
    assert set(new) == set(old)
    for k in old:
        assert old[k].dtype == new[k].dtype and torch.equal(old[k], new[k]), k
    # the file's own bytes: the first block of the first row of attn_output
    raw = gguf.GGUFReader(str(path))
    t = next(t for t in raw.tensors if t.name == "blk.0.attn_output.weight")
    block = np.asarray(t.data).reshape(-1)[: 20 if qtype == Q.Q4_1 else 18]
    qw = new["blocks.0.attn.proj.qweight"][0, :16].numpy()
    assert qw.tobytes() == block[-16:].tobytes()
    assert new["blocks.0.attn.proj.scales"][0, 0].numpy().tobytes() == block[:2].tobytes()
    q = load_run(out)
    with torch.no_grad():
        ids = torch.tensor([q.tokenizer.encode(PROMPT)])
        assert torch.isfinite(q.model(ids)).all()


def test_quantize_from_gguf_re_quantises_other_schemes_as_before(mixed, tmp_path) -> None:
    from safetensors.torch import load_file

    from lmlab.quantize.runs import quantize_tensors
    from lmlab.quantize.scheme import Scheme

    for name, args, scheme in (("int8", ["--to", "int8"], Scheme(8, 0, True)),
                               ("g64", ["--to", "int4", "--group-size", "64"],
                                Scheme(4, 64, False))):  # fmt: skip
        assert main(["quantize", "--run", str(mixed["gpt2"]), *args,
                     "--out", str(tmp_path / name)]) == 0  # fmt: skip
        new = load_file(str(tmp_path / name / "model.safetensors"))
        old = quantize_tensors(load_run(mixed["gpt2"]).model, scheme, progress=False)
        assert set(new) == set(old)
        assert all(torch.equal(old[k], new[k]) for k in old), name
