"""The decoding kernel's matrix products on quantised weights against a float reference.

Bound: the kernel's product of a row ``x`` with a quantised matrix equals ``x @ W_deq.T``
(``W_deq`` the dequantised matrix, float64 reference) within 1e-5 relative to the output's
scale: it computes in float32 on exactly the dequantised values (activations are never
quantised), so only float32 summation order differs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlab.quantize.modules import KERNEL_ROWS, QuantLinear, kernel_layout
from lmlab.quantize.scheme import Scheme, dequantize_matrix, quantize_matrix

SCHEMES = [Scheme(8, 0, True), Scheme(8, 0, False), Scheme(4, 32, False), Scheme(4, 128, True)]


def layer(scheme: Scheme, out: int = 200, n: int = 256, bias: bool = True):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(out, n, generator=g) * 0.05
    qt = quantize_matrix(w, scheme)
    b = torch.randn(out, generator=g) if bias else None
    lin = QuantLinear(out, n, scheme.bits, *kernel_layout(qt, scheme.bits), b)
    return lin, dequantize_matrix(qt, scheme.bits), b


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
@pytest.mark.parametrize("rows", [1, 3, KERNEL_ROWS])
def test_kernel_matmul_matches_float_matmul_of_the_dequantised_weights(scheme, rows) -> None:
    lin, deq, b = layer(scheme)
    x = torch.randn(rows, 256, generator=torch.Generator().manual_seed(rows))
    ref = (x.double() @ deq.double().T + b.double()).float()
    with torch.inference_mode():
        got = lin(x)  # a few float32 rows: the kernel's product
    scale = ref.abs().max().item()
    assert got.shape == (rows, 200) and got.dtype == torch.float32
    assert (got - ref).abs().max().item() <= 1e-5 * scale


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
@pytest.mark.parametrize("chunk", [None, 64 * 256])
def test_many_rows_and_bf16_autocast_dequantise_one_matrix(scheme, chunk, monkeypatch) -> None:
    if chunk:  # a slice of 64 outputs at a time, as for a vocabulary head
        monkeypatch.setattr("lmlab.quantize.modules.CHUNK_WEIGHTS", chunk)
    lin, deq, b = layer(scheme, bias=False)
    x = torch.randn(2, 20, 256, generator=torch.Generator().manual_seed(9))  # 40 rows
    ref = x @ deq.T
    with torch.inference_mode():
        got = lin(x)
        assert (got - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = lin(x)
    assert half.dtype == torch.bfloat16
    assert ((half.float() - ref).norm() / ref.norm()).item() < 1e-2


def test_dequantise_and_row_lookup_invert_the_tiling() -> None:
    for scheme in SCHEMES:
        lin, deq, _ = layer(scheme, out=130)  # not a whole number of 64-output tiles
        assert torch.equal(lin.dequantize(), deq)
        idx = torch.tensor([[0, 129], [64, 63]])
        assert torch.equal(lin.rows(idx), deq[idx])


def test_kernel_reads_the_layers_memory_without_copying() -> None:
    lin, _, _ = layer(Scheme(4, 32, False))
    w, d, m = lin.kernel_arrays()
    assert np.shares_memory(w, lin.w.numpy()) and np.shares_memory(d, lin.d.numpy())
    assert w.dtype == np.uint8 and d.dtype == np.uint16
