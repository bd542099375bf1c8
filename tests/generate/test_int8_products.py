"""Block products with activations rounded to int8 (:mod:`lmlab.generate._int8_products`).

Bounds: against the same arithmetic in float64 (the dequantised weights times the
activations rounded to int8 per block of 32 in numpy) the kernel agrees within 1e-5 of the
output's scale, float32 rounding of the per-block scaling only; against the exact float product of
the dequantised weights it is within 2% of the output's scale on Gaussian data (int8
rounding of the activations: at most half a step of max|x|/127 per input).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numba import njit

from lmlab.generate._int8_products import VNNI, _make_tile, matmul_x8

gguf = pytest.importorskip("gguf")

QTYPES = ["Q4_0", "Q4_1", "Q8_0"]


def blocks(qtype: str, out: int = 100, n_in: int = 96, seed: int = 0):
    """A random matrix as GGUF blocks in the kernel's tiles, and its dequantisation."""
    from lmlab.generate.gguf_blocks import _split_blocks

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out, n_in)).astype(np.float32)
    t = getattr(gguf.GGMLQuantizationType, qtype)
    raw = gguf.quants.quantize(w, t)
    deq = gguf.quants.dequantize(raw, t).reshape(w.shape).astype(np.float64)
    return _split_blocks(raw, qtype), deq


def reference(x: np.ndarray, deq: np.ndarray) -> np.ndarray:
    """The kernel's arithmetic in float64: the dequantised weights times the activations
    rounded to int8 per block of 32 (scale max|x| / 127)."""
    n, n_in = x.shape
    xb = x.reshape(n, -1, 32)
    amax = np.abs(xb).max(-1, keepdims=True)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    xq = (np.rint(xb * inv) * (amax / np.float32(127))).reshape(n, n_in).astype(np.float64)
    return xq @ deq.T


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("rows", [1, 3])
def test_product_is_the_int8_arithmetic_and_close_to_the_float_product(qtype, rows) -> None:
    (qs, d, m), deq = blocks(qtype)  # 100 outputs: a partial tile
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 96)).astype(np.float32)
    x[0, 32:64] = 0.0  # an all-zero block: scale 0, no division by zero
    bias = rng.standard_normal(100).astype(np.float32)
    out = np.full((rows, 100), np.nan, np.float32)
    matmul_x8(x, qs, d, m, bias, out)
    exact = x.astype(np.float64) @ deq.T + bias
    scale = np.abs(exact).max()
    assert np.abs(out - (reference(x, deq) + bias)).max() <= 1e-5 * scale
    err = np.abs(out - exact).max() / scale
    assert 1e-5 < err < 0.02  # rounded activations: not the float product, but close to it


@pytest.mark.parametrize("qtype", QTYPES + ["int8"])
def test_threads_share_the_tiles_and_give_the_same_bits(qtype) -> None:
    """Two threads (numba's pool) compute disjoint tiles of a matrix large enough to share:
    the same outputs as one thread."""
    import numba

    from lmlab.generate._int8_products import PARALLEL_BYTES, matmul_i8_x8

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 384)).astype(np.float32)
    if qtype == "int8":
        from lmlab.quantize.modules import _tiles

        q = rng.integers(-127, 128, (700, 384)).astype(np.int8)
        dm = (rng.random(700) * 0.01).astype(np.float16).view(np.uint16)
        args, fn = (_tiles(q), _tiles(dm), _tiles(dm)), matmul_i8_x8
    else:
        args, fn = blocks(qtype, out=700, n_in=384)[0], matmul_x8
    assert args[0].size >= PARALLEL_BYTES
    bias = rng.standard_normal(700).astype(np.float32)
    one, two = np.empty((2, 700), np.float32), np.empty((2, 700), np.float32)
    fn(x, *args, bias, one, 1)
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        fn(x, *args, bias, two, 2)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("qtype", ["Q4_1", "Q8_0"])
def test_the_vnni_instruction_and_the_portable_code_give_the_same_bits(qtype) -> None:
    """The same tile computed with ``vpdpbusd`` (where the CPU has it) and with plain vector
    arithmetic: integer sums are exact, so the outputs are identical."""
    (qs, d, m), _ = blocks(qtype, out=128, n_in=64, seed=3)
    x = np.random.default_rng(4).standard_normal((1, 64)).astype(np.float32)
    host = np.empty((1, 128), np.float32)
    matmul_x8(x, qs, d, m, np.zeros(128, np.float32), host)
    tile = _make_tile("q8" if qtype == "Q8_0" else "q4", vnni=False)

    @njit
    def portable(qs, d, m, a, da, sa, sx, out):
        for t in range(qs.shape[0]):
            tile(qs[t].ctypes.data, a.ctypes.data, da.ctypes.data, sa.ctypes.data,
                 sx.ctypes.data, d[t].ctypes.data, m[t].ctypes.data, qs.shape[1],
                 out[t].ctypes.data)  # fmt: skip

    from lmlab.generate._int8_products import quantize_rows

    a, da = np.empty((1, 64), np.int8), np.empty((1, 2), np.float32)
    sa, sx = np.empty((1, 2), np.int32), np.empty((1, 2), np.float32)
    quantize_rows(x, a, da, sa, sx)
    got = np.empty((2, 64), np.float32)
    portable(qs, d, m, a[0], da[0], sa[0], sx[0], got)
    assert np.array_equal(got.reshape(1, 128), host), f"VNNI on this host: {VNNI}"


@pytest.mark.parametrize("n_in", [96, 70, 20])
@pytest.mark.parametrize("rows", [1, 3])
def test_per_channel_int8_product(n_in: int, rows: int) -> None:
    """lmlab's int8 per output channel (``d*q + m`` per output): whole blocks of 32 inputs
    with rounded activations, the rest (a width not divisible by 32) in float32."""
    from lmlab.generate._int8_products import matmul_i8_x8
    from lmlab.quantize.modules import _tiles

    rng = np.random.default_rng(n_in + rows)
    q = rng.integers(-127, 128, (130, n_in)).astype(np.int8)  # 130 outputs: a partial tile
    d = (rng.random(130) * 0.02 + 0.001).astype(np.float16)
    m = (rng.standard_normal(130) * 0.01).astype(np.float16)
    w = q.astype(np.float64) * d.astype(np.float64)[:, None] + m.astype(np.float64)[:, None]
    x = rng.standard_normal((rows, n_in)).astype(np.float32)
    bias = rng.standard_normal(130).astype(np.float32)
    out = np.full((rows, 130), np.nan, np.float32)
    matmul_i8_x8(x, _tiles(q), _tiles(d.view(np.uint16)), _tiles(m.view(np.uint16)), bias, out)
    whole = 32 * (n_in // 32)
    xr = x.astype(np.float64)
    xb = x[:, :whole].reshape(rows, -1, 32)
    amax = np.abs(xb).max(-1, keepdims=True)
    xq = (np.rint(xb * (np.float32(127) / amax)) * (amax / np.float32(127))).reshape(rows, -1)
    xr[:, :whole] = xq  # the whole blocks' activations rounded, the rest exact
    ref = xr @ w.T + bias
    exact = x.astype(np.float64) @ w.T + bias
    scale = np.abs(exact).max()
    assert np.abs(out - ref).max() <= 1e-5 * scale
    assert np.abs(out - exact).max() <= 0.02 * scale


def test_quantised_models_decode_with_int8_activations_where_the_cpu_has_vnni(monkeypatch):
    """The policy: a quantised model's step rounds activations on a VNNI host (and its
    logits stay within 2% of the exact step's); ``LMLAB_INT8_ACTIVATIONS`` overrides it; a
    float model never does."""
    from lmlab.generate._fastdecode_kernels import INT8_ACT
    from lmlab.generate.fastdecode import FastDecoder
    from lmlab.models.transformer import Transformer, TransformerConfig
    from lmlab.quantize.runs import build_quantized, quantize_tensors
    from lmlab.quantize.scheme import Scheme

    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=300, context_length=32, n_layer=2, n_head=4,
                            d_model=64, block="llama", n_kv_head=2)  # fmt: skip
    float_model = Transformer(cfg).eval()
    scheme = Scheme(4, 32, False)
    model = build_quantized(cfg, quantize_tensors(float_model, scheme, False), scheme, "test")

    def logits(flag: str | None) -> tuple[int, torch.Tensor]:
        if flag is None:
            monkeypatch.delenv("LMLAB_INT8_ACTIVATIONS", raising=False)
        else:
            monkeypatch.setenv("LMLAB_INT8_ACTIVATIONS", flag)
        dec = FastDecoder(model)
        state = dec.new_state(1)
        out = [dec.step(torch.tensor([t]), state) for t in (5, 17, 250, 3)]
        return int(dec.cfg[INT8_ACT]), torch.cat(out)

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        on, rounded = logits("1")
        torch.set_num_threads(2)  # the step's products on two threads: the same bits
        assert torch.equal(logits("1")[1], rounded)
    finally:
        torch.set_num_threads(before)
    off, exact = logits("0")
    assert (on, off) == (1, 0)
    rel = ((rounded - exact).norm() / exact.norm()).item()
    assert 0 < rel < 0.02
    assert logits(None)[0] == int(VNNI)
    monkeypatch.setenv("LMLAB_INT8_ACTIVATIONS", "1")
    assert FastDecoder(float_model).cfg[INT8_ACT] == 0  # dense float matrices: nothing to round
