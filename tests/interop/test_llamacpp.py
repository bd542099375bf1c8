"""lmlab against llama.cpp (``llama-cpp-python``) on the same GGUF files.

* SmolLM2-135M-Instruct Q4_1 (``builtin:smollm2``), teacher-forced on 2,000 tokens of
  English prose: top-1 agreement >= 95%, mean KL(llama.cpp || lmlab) <= 0.05 nats/token,
  perplexities within 2%. They cannot be equal: lmlab computes in float32 on the
  dequantised weights, llama.cpp quantises the activations to 8 bits in its Q4 x Q8
  products and keeps its KV cache in float16.
* lmlab-trained runs (byte-level BPE; Llama and GPT-2 blocks) exported by
  :func:`lmlab.interop.gguf_export.export_gguf` as f32 and q8_0: llama.cpp loads them,
  tokenises as lmlab does, and gives the same logits (within the float16 KV cache's
  rounding for f32, its activation quantisation for q8_0) and the same greedy continuation.

Skipped where ``llama-cpp-python`` is not installed (it compiles llama.cpp: ``pip install
'.[llamacpp]'``), and with the reason where the installed build crashes on this CPU.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

llama_cpp = pytest.importorskip(
    "llama_cpp", reason="needs llama-cpp-python (pip install '.[llamacpp]')"
)

from lmlab.errors import LmlabError  # noqa: E402
from shared_data import shared_file  # noqa: E402

pytestmark = pytest.mark.slow

PROSE_FILE = ("gutenberg", "austen_pride_and_prejudice.txt")
N_TOKENS = 2000
PROBE = """
import sys, llama_cpp
m = llama_cpp.Llama(sys.argv[1], n_ctx=64, n_threads=1, verbose=False)
m.eval([1, 2, 3])
"""


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _llama(path: Path, n_ctx: int):
    return llama_cpp.Llama(
        str(path), n_ctx=n_ctx, n_batch=512, n_threads=1, n_threads_batch=1,
        logits_all=True, verbose=False,
    )  # fmt: skip


def _check_runs(path: Path) -> None:
    """Skip (with the reason) where this llama.cpp build crashes on the CPU."""
    r = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, timeout=120)
    if r.returncode != 0:
        pytest.skip(
            f"llama-cpp-python crashes on this machine (exit {r.returncode}); rebuild it "
            "(e.g. CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX512=ON')"
        )


def _teacher_forced(llm, ids: list[int]) -> torch.Tensor:
    llm.reset()
    llm.eval(ids)
    return torch.from_numpy(np.array(llm.scores[: len(ids)], dtype=np.float32))


# -- SmolLM2 ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    from lmlab.interop.sources import builtin_path
    from lmlab.run import load_run

    try:
        path = builtin_path("smollm2")
    except LmlabError as e:
        pytest.skip(f"builtin:smollm2 unavailable ({e})")
    _check_runs(path)
    return path, load_run("builtin:smollm2")


@pytest.fixture(scope="module")
def prose() -> str:
    from lmlab.embeddings.corpus import strip_gutenberg

    raw = shared_file(*PROSE_FILE).read_text(encoding="utf-8").replace("\r\n", "\n")
    return strip_gutenberg(raw).strip()[:20000]


def test_smollm2_teacher_forced_quality_matches_llama_cpp(smollm2, prose) -> None:
    path, lm = smollm2
    ids = lm.tokenizer.encode(prose)
    llm = _llama(path, 2048)
    assert llm.tokenize(prose.encode(), add_bos=False, special=False) == ids
    ids = ids[:N_TOKENS]
    theirs = _teacher_forced(llm, ids).double().log_softmax(-1)
    with torch.inference_mode():
        ours = lm.model(torch.tensor([ids]))[0].double().log_softmax(-1)
    agree = (theirs.argmax(-1) == ours.argmax(-1)).double().mean().item()
    kl = (theirs.exp() * (theirs - ours)).sum(-1).mean().item()
    target = torch.tensor(ids[1:])[:, None]
    ppl_theirs = theirs[:-1].gather(1, target).mean().neg().exp().item()
    ppl_ours = ours[:-1].gather(1, target).mean().neg().exp().item()
    report = f"agreement {agree:.3f}, KL {kl:.4f}, perplexity {ppl_ours:.3f} vs {ppl_theirs:.3f}"
    assert agree >= 0.95, report
    assert kl <= 0.05, report
    assert abs(ppl_ours / ppl_theirs - 1) <= 0.02, report


# -- lmlab runs exported to GGUF --------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from tiny_hf import train_bpe_runs

    return train_bpe_runs(tmp_path_factory.mktemp("llamacpp"), steps=150)


PROMPTS = ["Pack my box with five dozen", "The quick brown fox jumps", "12345 colours, "]
NEW = 24
TOL = {"f32": 5e-3, "q8_0": 0.1}  # logits of magnitude ~10


@pytest.mark.parametrize("dtype", ["f32", "q8_0"])
@pytest.mark.parametrize("block", ["llama", "gpt2"])
def test_lmlab_run_exported_to_gguf_runs_in_llama_cpp(runs, tmp_path, block, dtype) -> None:
    from lmlab.generate import SamplingParams, generate
    from lmlab.interop.gguf_export import export_gguf
    from lmlab.run import load_run

    run = load_run(runs[block])
    path = export_gguf(run, tmp_path / f"{block}-{dtype}.gguf", dtype)
    _check_runs(path)
    llm = _llama(path, run.model.config.context_length)
    tol = TOL[dtype]
    for prompt in PROMPTS:
        ids = run.tokenizer.encode(prompt)
        assert llm.tokenize(prompt.encode(), add_bos=False, special=False) == ids
        params = SamplingParams(max_new_tokens=NEW, temperature=0, ignore_eos=True)
        new = generate(run.model, run.tokenizer, ids, params)[0].token_ids
        seq = ids + new
        theirs = _teacher_forced(llm, seq)
        with torch.inference_mode():
            ours = run.model(torch.tensor([seq]))[0]
        diff = (theirs - ours).abs().max().item()
        assert diff < tol, f"{prompt!r}: max |logit difference| {diff:.2e}"
        # llama.cpp's greedy choice after every prefix is lmlab's token, unless lmlab's own
        # top two are closer than the tolerance (a tie at llama.cpp's precision).
        for k in range(len(ids) - 1, len(seq) - 1):
            top2 = ours[k].topk(2).values
            if theirs[k].argmax().item() != seq[k + 1]:
                assert (top2[0] - top2[1]).item() < 2 * tol, f"{prompt!r}: token {k}"
        if dtype == "f32":  # and from llama.cpp's own greedy decoding, token for token
            llm.reset()
            llm.eval(ids)
            got = []
            for _ in range(NEW):
                got.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
                llm.eval(got[-1:])
            assert got == new, prompt
