"""GGUF: lmlab runs -> GGUF (f32/f16/q8_0) -> lmlab again; the built-in SmolLM2 file; and the
one-line refusals of files lmlab cannot read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.cli import main
from lmlab.interop.gguf_import import permute_rope, unpermute_rope
from lmlab.run import load_run

gguf = pytest.importorskip("gguf")

PROMPT = "The quick brown fox jumps over the lazy dog. 12345"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from tiny_hf import train_bpe_runs

    return train_bpe_runs(tmp_path_factory.mktemp("gguf"))


def test_rope_permutation_round_trips() -> None:
    w = np.random.default_rng(0).standard_normal((4 * 8, 5)).astype(np.float32)
    assert np.array_equal(unpermute_rope(permute_rope(w, 4), 4), w)
    assert not np.array_equal(permute_rope(w, 4), w)


@pytest.mark.parametrize("block", ["llama", "gpt2"])
@pytest.mark.parametrize(("dtype", "tol"), [("f32", 1e-6), ("f16", 5e-3), ("q8_0", 5e-2)])
def test_export_gguf_then_import_gives_the_same_model(
    runs: dict[str, Path], tmp_path: Path, block: str, dtype: str, tol: float
) -> None:
    src = load_run(runs[block])
    path = tmp_path / f"m-{dtype}.gguf"
    args = ["export", "--run", str(runs[block]), "--format", "gguf", "--dtype", dtype]
    assert main([*args, "--out", str(path)]) == 0
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.architecture"].contents() == block
    back = load_run(path)  # a .gguf path is accepted wherever a run is
    ids = src.tokenizer.encode(PROMPT)
    assert back.tokenizer.encode(PROMPT) == ids
    x = torch.tensor([ids])
    with torch.no_grad():
        diff = (back.model(x) - src.model(x)).abs().max().item()
    assert diff < tol
    if dtype == "q8_0":
        types = {t.tensor_type.name for t in reader.tensors}
        assert "Q8_0" in types


def test_export_keeps_the_chat_template(tmp_path: Path) -> None:
    from lmlab.serve.chat_template import load_chat_template
    from tiny_hf import save_tiny

    save_tiny("llama", tmp_path / "hf")
    assert main(["export", "--run", str(tmp_path / "hf"), "--format", "gguf", "--out",
                 str(tmp_path / "m.gguf"), "--dtype", "f32"]) == 0  # fmt: skip
    a, b = load_run(tmp_path / "hf"), load_run(tmp_path / "m.gguf")
    msgs = [{"role": "user", "content": "Hi"}]
    assert load_chat_template(b.path, b.config).render(msgs) == load_chat_template(
        a.path, a.config
    ).render(msgs)
    assert b.tokenizer.eos_id == a.tokenizer.eos_id
    marked = "<|im_start|>user\nHi"  # the marker as a template writes it: still one special
    assert b.tokenizer.encode_with_specials(marked) == a.tokenizer.encode_with_specials(marked)
    assert b.tokenizer.encode_with_specials(marked)[0] == b.tokenizer.special_tokens["<|im_start|>"]
    assert b.tokenizer.encode(marked) == a.tokenizer.encode(marked)


# -- the built-in model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    from tiny_hf import require_smollm2

    require_smollm2()
    return load_run("builtin:smollm2")


def test_smollm2_is_read_as_the_issue_describes(smollm2) -> None:
    c = smollm2.model.config
    assert (c.n_layer, c.d_model, c.n_head, c.kv_heads, c.ff_dim) == (30, 576, 9, 3, 1536)
    assert (c.rope_theta, c.norm_eps, c.vocab_size, c.block) == (1e5, 1e-5, 49152, "llama")
    assert c.tie_embeddings and smollm2.model.num_params() == 134_515_008
    tok = smollm2.tokenizer
    assert tok.special_tokens["<|im_start|>"] == 1 and tok.eos_id == 2
    assert tok.end_ids == {0, 2}  # <|im_end|> and <|endoftext|> both end a reply
    assert tok.encode("2024") == [tok.hf.token_to_id(d) for d in "2024"]  # digits one by one


def test_smollm2_answers_through_its_chat_template(smollm2) -> None:
    from lmlab.generate import SamplingParams, generate
    from lmlab.serve.chat_template import encode_chat, load_chat_template

    template = load_chat_template(smollm2.path, smollm2.config)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = template.render(messages)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                           "<|im_start|>assistant\n")  # fmt: skip
    ids = encode_chat(template, messages, smollm2.tokenizer)  # its markers as special ids
    out = generate(
        smollm2.model, smollm2.tokenizer, ids, SamplingParams(max_new_tokens=30, temperature=0)
    )[0]
    assert "Paris" in out.text
    assert out.finish_reason == "stop" and "<|im_end|>" not in out.text


# -- bad input ---------------------------------------------------------------------------


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _write(path: Path, arch: str, tensors: dict[str, tuple[np.ndarray, object]]) -> Path:
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in {"context_length": 64, "embedding_length": 64, "block_count": 1,
                       "feed_forward_length": 128}.items():  # fmt: skip
        w.add_uint32(f"{arch}.{key}", value)
    w.add_uint32(f"{arch}.attention.head_count", 4)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    for name, (arr, raw) in tensors.items():
        w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_bad_gguf_files_get_one_line(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.gguf"
    assert (
        main(["export", "--run", str(runs["llama"]), "--format", "gguf", "--out", str(good)]) == 0
    )
    capsys.readouterr()
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    err = _one_line_error(capsys, main(["generate", "--run", str(truncated), "--prompt", "a"]))
    assert "truncated or corrupt" in err
    text = tmp_path / "notes.gguf"
    text.write_text("hello", encoding="utf-8")
    assert "not a GGUF file" in _one_line_error(capsys, main(["info", "--run", str(text)]))
    falcon = _write(tmp_path / "falcon.gguf", "falcon", {"x": (np.zeros(4, np.float32), None)})
    err = _one_line_error(capsys, main(["import", str(falcon), "--out", str(tmp_path / "o")]))
    assert "'falcon' is not supported" in err and not (tmp_path / "o").exists()
    q81 = np.zeros((64, 2 * 40), np.uint8)  # 64 rows of 64 values in Q8_1 blocks
    odd = _write(tmp_path / "q81.gguf", "llama",
                 {"token_embd.weight": (q81, gguf.GGMLQuantizationType.Q8_1)})  # fmt: skip
    err = _one_line_error(capsys, main(["import", str(odd), "--out", str(tmp_path / "o")]))
    assert "Q8_1" in err and "token_embd.weight" in err and not (tmp_path / "o").exists()


def test_pickles_and_incomplete_folders_are_refused(tmp_path: Path, capsys) -> None:
    from tiny_hf import save_tiny

    pt = tmp_path / "model.bin"
    pt.write_bytes(b"\x80\x04not really")
    assert "pickle" in _one_line_error(
        capsys, main(["import", str(pt), "--out", str(tmp_path / "o")])
    )
    hf = tmp_path / "hf"
    save_tiny("llama", hf)
    capsys.readouterr()  # transformers' own progress output
    (hf / "model.safetensors").rename(hf / "pytorch_model.bin")
    err = _one_line_error(capsys, main(["import", str(hf), "--out", str(tmp_path / "o")]))
    assert "pickle" in err and "safetensors" in err
    (hf / "pytorch_model.bin").unlink()
    err = _one_line_error(capsys, main(["import", str(hf), "--out", str(tmp_path / "o")]))
    assert "no model.safetensors" in err and not (tmp_path / "o").exists()


def test_mismatched_vocabulary_is_refused(tmp_path: Path, capsys) -> None:
    from tiny_hf import save_tiny

    save_tiny("llama", tmp_path / "hf", vocab=200)  # the tokenizer has ~300 tokens
    capsys.readouterr()
    err = _one_line_error(
        capsys, main(["generate", "--run", str(tmp_path / "hf"), "--prompt", "a"])
    )
    assert "tokenizer has" in err and "vocabulary is 200" in err


def test_import_never_overwrites_without_asking(tmp_path: Path, capsys) -> None:
    from tiny_hf import save_tiny

    save_tiny("gpt2", tmp_path / "hf")
    capsys.readouterr()
    out = tmp_path / "run"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    err = _one_line_error(capsys, main(["import", str(tmp_path / "hf"), "--out", str(out)]))
    assert "--overwrite" in err and (out / "mine.txt").read_text() == "keep"
    err = _one_line_error(
        capsys, main(["import", str(tmp_path / "hf"), "--out", str(out), "--overwrite"])
    )
    assert "not an lmlab run" in err and (out / "mine.txt").read_text() == "keep"
    (out / "mine.txt").unlink()
    assert main(["import", str(tmp_path / "hf"), "--out", str(out)]) == 0
    first = (out / "model.safetensors").stat().st_mtime_ns
    assert main(["import", str(tmp_path / "hf"), "--out", str(out), "--overwrite"]) == 0
    assert (out / "model.safetensors").stat().st_mtime_ns != first
    capsys.readouterr()
    assert "no built-in model" in _one_line_error(capsys, main(["info", "--run", "builtin:nope"]))


def test_an_imported_run_decodes_from_its_unchanged_file(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    import os

    from lmlab.generate import fastdecode

    path = tmp_path / "m.gguf"
    args = ["export", "--run", str(runs["llama"]), "--format", "gguf", "--dtype", "q8_0"]
    assert main([*args, "--out", str(path)]) == 0
    assert main(["import", str(path), "--out", str(tmp_path / "run")]) == 0
    direct, imported = load_run(path), load_run(tmp_path / "run")
    assert imported.model in fastdecode._GGUF  # its decoder may read the file's blocks
    x = torch.tensor([direct.tokenizer.encode(PROMPT)])
    with torch.no_grad():
        assert torch.equal(direct.model(x), imported.model(x))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file changed since
    assert load_run(tmp_path / "run").model not in fastdecode._GGUF
