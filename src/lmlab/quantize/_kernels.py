"""A compiled dequantisation of int8 blocks of 32 (a GGUF file's Q8_0, opened directly by
:mod:`lmlab.quantize.gguf_direct`), the counterpart of
:func:`lmlab.generate._fastdecode_kernels.dequantize_q4` for prefill: one pass into the
output rows, where the PyTorch chain (widen, scale, transpose) holds four float copies of
a slice of the vocabulary head at once."""

from __future__ import annotations

from numba import njit

from lmlab.generate._fastdecode_kernels import _f16_as_f32, _i8


@njit(cache=True, nogil=True)
def dequantize_q8(qs, d, t0, out):
    """Rows of an 8-bit block matrix as float32: tiles ``t0..`` of ``qs`` (n_tiles,
    n_blocks, 32, T) int8 with scales ``d`` (n_tiles, n_blocks, T) float16 bits into ``out``
    (rows, 32 n_blocks): ``W[o, 32k + i] = d * q``."""
    _, n_blocks, _, tile = qs.shape
    for r in range(out.shape[0]):
        t, o = t0 + r // tile, r % tile
        q, dt = qs[t], d[t]
        row = out[r]
        for k in range(n_blocks):
            dk = _f16_as_f32(dt[k, o])
            qk = q[k]
            for i in range(32):
                row[32 * k + i] = dk * _i8(qk[i, o])
