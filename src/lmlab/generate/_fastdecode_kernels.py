"""Numba kernel of one Transformer decoding step: one new token per row, every layer, logits.

Why: at batch 1 a small Transformer's decoding step is ~130 tiny PyTorch calls whose fixed
cost (5-15 us each) dwarfs the arithmetic, and on a model of 100M+ parameters it is the time
to stream the weights from memory; one compiled call that reads each weight once, in as few
bytes as the model allows, does the same work in a fraction of the time. ``fastmath`` stays
off (results match the PyTorch forward to ~1e-6), except that the block-quantised products
may fuse multiply-adds.

Layout (exported by :mod:`lmlab.generate.fastdecode`): each matrix ``W`` (out, in) is cut
into tiles of ``T`` outputs, each tile stored contiguously and transposed, ``(in, T)``, so
a matrix-vector product streams memory in order as ``acc += x[j] * W[j]`` row updates that
LLVM vectorises over the tile without reassociating sums. Matrices come in three kinds,
chosen per matrix by the type of the array ``w`` (the ``_mm`` overload):

* dense float32, or bfloat16 as its bits (``uint16``; numpy has no bfloat16), widened to
  float32 as it is read (a 16-bit shift) - half the bytes, the same float32 arithmetic;
* ``uint8`` nibbles of 4-bit blocks (GGUF Q4_0/Q4_1): 32 inputs share a float16 scale ``d``
  and offset ``m``, weight = d*q + m exactly as the file defines it, computed as
  ``d * sum(x*q) + m * sum(x)`` in float32;
* ``int8`` values of 8-bit blocks (GGUF Q8_0), weight = d*q;
* ``int8`` per output channel (lmlab's own int8, :mod:`lmlab.quantize`): ``w`` (n_tiles,
  in, T), one float16 scale ``d`` and zero point ``m`` per output, weight = d*q + m.

So a model read from a GGUF file decodes from the file's own blocks (a quarter to an eighth
of the float32 bytes) while computing in float32 on exactly the weights of its float model.
With ``cfg[INT8_ACT]`` set (a quantised model on a CPU with AVX-512 VNNI, see
:func:`lmlab.generate.fastdecode.int8_activations`) the 4- and 8-bit products round the
activations to int8 per block of 32 and multiply integers instead
(:mod:`lmlab.generate._int8_products`), as llama.cpp does. Missing biases are zeros; unused tensors (no MLP, no
learned positions, no RoPE) are small dummies. The KV cache is ``(L, B, n_kv, context,
head_dim)``, shared with PyTorch, always float32; attention reads it once per KV head for
all the query heads that share it, its two products through BLAS (numba's ``np.dot``). numba compiles one specialisation per
combination of matrix kinds.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import numpy as np
from llvmlite import binding as _ll
from llvmlite import ir
from numba.core import config as _numba_config


def _prefer_wide_vectors() -> None:
    """LLVM tunes recent Intel server CPUs for 256-bit vectors; these kernels stream
    weights and run about twice as fast with 512-bit ones where the CPU has AVX-512. Takes
    effect only before numba's CPU target is set up (the first compiled function of the
    process), and never overrides the user's ``NUMBA_CPU_FEATURES``."""
    if _numba_config.CPU_FEATURES is not None:
        return
    try:
        features = _ll.get_host_cpu_features()
    except RuntimeError:  # pragma: no cover - unknown host
        return
    if features.get("avx512f"):
        _numba_config.CPU_FEATURES = features.flatten() + ",-prefer-256-bit"


_prefer_wide_vectors()


def _drop_stale_step_cache() -> None:
    """numba keys its cache of :func:`decode_step` on this file's contents alone, but the
    step inlines :mod:`lmlab.generate._int8_products`: when that file changes, the step's
    cached machine code (in ``__pycache__`` beside this file) is deleted, so that it is
    compiled again instead of running the old products."""
    here = Path(__file__)
    cache = here.parent / "__pycache__"
    try:
        digest = hashlib.sha256(here.with_name("_int8_products.py").read_bytes()).hexdigest()
        stamp = cache / f"{here.stem}.decode_step.deps"
        if stamp.is_file() and stamp.read_text() == digest:
            return
        for f in cache.glob(f"{here.stem}.decode_step-*.nb[ic]"):
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: nothing cached there either
        return


_drop_stale_step_cache()

from numba import njit, prange, types  # noqa: E402  (after the CPU features are chosen)
from numba.extending import intrinsic, overload  # noqa: E402

# A decoding step whose matrices are all dense has no parallel loop to make (its int8
# products are never reached): numba's warning about it would reach the user's terminal.
warnings.filterwarnings(
    "ignore", message=r"(?s).*parallel=True.*no transformation for parallel execution"
)


def prange_only() -> dict[str, bool]:
    """numba's ``parallel`` options for a function whose only parallel loops are its
    explicit ``prange`` ones (a fresh dict: numba consumes it).

    The decoding step takes these, and the int8-activation products
    (:mod:`lmlab.generate._int8_products`) are inlined into it, because a cached function
    calling a separately compiled ``parallel`` one crashes when loaded from numba's cache
    (numba issue #8578)."""
    off = ("comprehension", "reduction", "inplace_binop", "setitem", "numpy", "stencil", "fusion")
    return {**dict.fromkeys(off, False), "prange": True}


# Matrices of fewer weight bytes run on one thread: starting the pool's threads costs a few
# microseconds, as much as such a product takes.
PARALLEL_BYTES = 1 << 16

# Integer settings passed in ``cfg``.
N_HEAD, N_KV, HEAD_DIM, LLAMA, GELU_TANH, HAS_MLP, FF, INT8_ACT, THREADS = range(9)
_SQRT_HALF = np.float32(0.7071067811865476)


@intrinsic
def _bf16_as_f32(typingctx, u):
    """The float32 of bfloat16 bits ``u`` (uint16): zero-extend, shift left 16, reinterpret."""
    if u != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        wide = builder.zext(args[0], ir.IntType(32))
        return builder.bitcast(builder.shl(wide, ir.Constant(ir.IntType(32), 16)), ir.FloatType())

    return types.float32(u), codegen


def _w(v):  # pragma: no cover - replaced by the overload inside compiled code
    """A stored weight as float32: float32 as is, bfloat16 bits (uint16) widened."""
    raise NotImplementedError


@overload(_w, inline="always")
def _w_impl(v):
    if isinstance(v, types.Float):
        return lambda v: v
    if v == types.uint16:
        return lambda v: _bf16_as_f32(v)
    return None


@intrinsic
def _f16_as_f32(typingctx, u):
    """The float32 of float16 bits ``u`` (uint16)."""
    if u != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(u), codegen


@intrinsic
def _lo4(typingctx, u):
    """The low nibble of byte ``u`` as a float32 (in 32-bit lanes, so LLVM vectorises it)."""
    if u != types.uint8:
        return None

    def codegen(context, builder, signature, args):
        return builder.uitofp(builder.and_(args[0], ir.Constant(ir.IntType(8), 15)), ir.FloatType())

    return types.float32(u), codegen


@intrinsic
def _hi4(typingctx, u):
    """The high nibble of byte ``u`` as a float32."""
    if u != types.uint8:
        return None

    def codegen(context, builder, signature, args):
        return builder.uitofp(builder.lshr(args[0], ir.Constant(ir.IntType(8), 4)), ir.FloatType())

    return types.float32(u), codegen


@intrinsic
def _i8(typingctx, u):
    """A signed byte as a float32."""
    if u != types.int8:
        return None

    def codegen(context, builder, signature, args):
        return builder.sitofp(args[0], ir.FloatType())

    return types.float32(u), codegen


@njit(cache=True, fastmath=False, nogil=True)
def _mm_dense(x, wt, bias, out):
    """``out = x @ W.T + bias`` for rows ``x`` (n, in) and the tiles ``wt`` (n_tiles, in, T)
    of ``W``; ``out`` (n, n_out) takes the first n_out outputs. Each tile is read once for
    all rows, four input rows at a time; every row's sums run in the same order whatever
    ``n`` is."""
    n, n_out = x.shape[0], out.shape[1]
    n_tiles, n_in, tile = wt.shape
    acc = np.empty(tile, np.float32)
    for t in range(n_tiles):
        lo, w = t * tile, wt[t]
        valid = min(tile, n_out - lo)
        for b in range(n):
            xb = x[b]
            acc[:] = 0.0
            j = 0
            while j + 4 <= n_in:
                w0, w1, w2, w3 = w[j], w[j + 1], w[j + 2], w[j + 3]
                x0, x1, x2, x3 = xb[j], xb[j + 1], xb[j + 2], xb[j + 3]
                for o in range(tile):
                    acc[o] += x0 * _w(w0[o]) + x1 * _w(w1[o]) + x2 * _w(w2[o]) + x3 * _w(w3[o])
                j += 4
            while j < n_in:
                wj, xj = w[j], xb[j]
                for o in range(tile):
                    acc[o] += xj * _w(wj[o])
                j += 1
            for o in range(valid):
                out[b, lo + o] = acc[o] + bias[lo + o]


@njit(cache=True, fastmath={"contract"}, nogil=True)
def _q4_tile(t, x, qs, d, m, sums, bias, out, acc, tot):
    """Tile ``t`` of :func:`_mm_q4` for every row (``sums``: :func:`_block_sums`;
    ``acc``, ``tot``: scratch of one tile)."""
    n_blocks, tile = qs.shape[1], qs.shape[3]
    lo = t * tile
    valid = min(tile, out.shape[1] - lo)
    for b in range(x.shape[0]):
        xb = x[b]
        tot[:] = 0.0
        for k in range(n_blocks):
            q, j0 = qs[t, k], 32 * k
            acc[:] = 0.0
            for i in range(16):
                xl, xh, row = xb[j0 + i], xb[j0 + 16 + i], q[i]
                for o in range(tile):
                    acc[o] += xl * _lo4(row[o]) + xh * _hi4(row[o])
            dk, mk, sk = d[t, k], m[t, k], sums[b, k]
            for o in range(tile):
                tot[o] += _f16_as_f32(dk[o]) * acc[o] + _f16_as_f32(mk[o]) * sk
        for o in range(valid):
            out[b, lo + o] = tot[o] + bias[lo + o]


@njit(cache=True, nogil=True)
def _block_sums(x, n_blocks):
    """The sum of each block of 32 inputs, per row (n, n_blocks)."""
    sums = np.empty((x.shape[0], n_blocks), np.float32)
    for b in range(x.shape[0]):
        for k in range(n_blocks):
            s = np.float32(0.0)
            for i in range(32):
                s += x[b, 32 * k + i]
            sums[b, k] = s
    return sums


@njit(cache=True, fastmath={"contract"}, nogil=True)
def _mm_q4(x, qs, d, m, bias, out):
    """``out = x @ W.T + bias`` for 4-bit blocks: ``qs`` (n_tiles, n_blocks, 16, T) bytes
    whose low nibble is input ``32k + i`` and high nibble input ``32k + 16 + i`` of block
    ``k`` (llama.cpp's order), ``d`` and ``m`` (n_tiles, n_blocks, T) float16 bits:
    ``W[o, 32k + i] = d * q + m``."""
    tile = qs.shape[3]
    sums = _block_sums(x, qs.shape[1])
    acc, tot = np.empty(tile, np.float32), np.empty(tile, np.float32)
    for t in range(qs.shape[0]):
        _q4_tile(t, x, qs, d, m, sums, bias, out, acc, tot)


@njit(cache=True, fastmath={"contract"}, nogil=True)
def _q8_tile(t, x, qs, d, bias, out, acc, tot):
    """Tile ``t`` of :func:`_mm_q8` for every row (``acc``, ``tot``: scratch of one tile)."""
    n_blocks, tile = qs.shape[1], qs.shape[3]
    lo = t * tile
    valid = min(tile, out.shape[1] - lo)
    for b in range(x.shape[0]):
        xb = x[b]
        tot[:] = 0.0
        for k in range(n_blocks):
            q, j0 = qs[t, k], 32 * k
            acc[:] = 0.0
            for i in range(32):
                xi, row = xb[j0 + i], q[i]
                for o in range(tile):
                    acc[o] += xi * _i8(row[o])
            dk = d[t, k]
            for o in range(tile):
                tot[o] += _f16_as_f32(dk[o]) * acc[o]
        for o in range(valid):
            out[b, lo + o] = tot[o] + bias[lo + o]


@njit(cache=True, fastmath={"contract"}, nogil=True)
def _mm_q8(x, qs, d, bias, out):
    """``out = x @ W.T + bias`` for 8-bit blocks: ``qs`` (n_tiles, n_blocks, 32, T) signed
    bytes, ``d`` (n_tiles, n_blocks, T) float16 bits: ``W[o, 32k + i] = d * q``."""
    tile = qs.shape[3]
    acc, tot = np.empty(tile, np.float32), np.empty(tile, np.float32)
    for t in range(qs.shape[0]):
        _q8_tile(t, x, qs, d, bias, out, acc, tot)


@njit(cache=True, fastmath={"contract"}, nogil=True)
def _mm_i8(x, qs, d, m, bias, out):
    """``out = x @ W.T + bias`` for per-channel int8 (lmlab's int8 quantisation): ``qs``
    (n_tiles, in, T) signed bytes, ``d`` and ``m`` (n_tiles, T) float16 bits:
    ``W[o, i] = d[o] * q + m[o]``, computed as ``d * sum(x*q) + m * sum(x)``."""
    n, n_out = x.shape[0], out.shape[1]
    n_tiles, n_in, tile = qs.shape
    acc = np.empty(tile, np.float32)
    for t in range(n_tiles):
        lo, w = t * tile, qs[t]
        valid = min(tile, n_out - lo)
        dt, mt = d[t], m[t]
        for b in range(n):
            xb = x[b]
            sx = np.float32(0.0)
            for j in range(n_in):
                sx += xb[j]
            acc[:] = 0.0
            j = 0
            while j + 4 <= n_in:
                w0, w1, w2, w3 = w[j], w[j + 1], w[j + 2], w[j + 3]
                x0, x1, x2, x3 = xb[j], xb[j + 1], xb[j + 2], xb[j + 3]
                for o in range(tile):
                    acc[o] += x0 * _i8(w0[o]) + x1 * _i8(w1[o]) + x2 * _i8(w2[o]) + x3 * _i8(w3[o])
                j += 4
            while j < n_in:
                wj, xj = w[j], xb[j]
                for o in range(tile):
                    acc[o] += xj * _i8(wj[o])
                j += 1
            for o in range(valid):
                out[b, lo + o] = (
                    _f16_as_f32(dt[o]) * acc[o] + _f16_as_f32(mt[o]) * sx + bias[lo + o]
                )


# Several rows (batched decoding, a prefill chunk): each block is widened to float32 once
# and used for every row, four rows at a time, instead of once per row. The per-row sums
# keep the single-row kernels' expressions and order.


@njit(cache=True, fastmath={"contract"}, nogil=True)
def _mm_q4_rows(x, qs, d, m, bias, out):
    """:func:`_mm_q4` for several rows."""
    n, n_out = x.shape[0], out.shape[1]
    n_tiles, n_blocks, _, tile = qs.shape
    wl = np.empty((16, tile), np.float32)  # low and high nibbles of one block, widened
    wh = np.empty((16, tile), np.float32)
    df = np.empty(tile, np.float32)
    mf = np.empty(tile, np.float32)
    acc = np.empty((4, tile), np.float32)
    tot = np.empty((n, tile), np.float32)
    sums = np.empty((n, n_blocks), np.float32)
    for b in range(n):
        for k in range(n_blocks):
            s = np.float32(0.0)
            for i in range(32):
                s += x[b, 32 * k + i]
            sums[b, k] = s
    for t in range(n_tiles):
        lo = t * tile
        valid = min(tile, n_out - lo)
        tot[:] = 0.0
        for k in range(n_blocks):
            q, j0 = qs[t, k], 32 * k
            for i in range(16):
                row, a, c = q[i], wl[i], wh[i]
                for o in range(tile):
                    a[o] = _lo4(row[o])
                    c[o] = _hi4(row[o])
            dk, mk = d[t, k], m[t, k]
            for o in range(tile):
                df[o] = _f16_as_f32(dk[o])
                mf[o] = _f16_as_f32(mk[o])
            b = 0
            while b < n:
                r = min(4, n - b)
                acc[:] = 0.0
                if r == 4:
                    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
                    for i in range(16):
                        vl, vh = wl[i], wh[i]
                        x0l, x0h = x[b, j0 + i], x[b, j0 + 16 + i]
                        x1l, x1h = x[b + 1, j0 + i], x[b + 1, j0 + 16 + i]
                        x2l, x2h = x[b + 2, j0 + i], x[b + 2, j0 + 16 + i]
                        x3l, x3h = x[b + 3, j0 + i], x[b + 3, j0 + 16 + i]
                        for o in range(tile):
                            el, eh = vl[o], vh[o]
                            a0[o] += x0l * el + x0h * eh
                            a1[o] += x1l * el + x1h * eh
                            a2[o] += x2l * el + x2h * eh
                            a3[o] += x3l * el + x3h * eh
                else:
                    for rr in range(r):
                        a, xb = acc[rr], x[b + rr]
                        for i in range(16):
                            vl, vh = wl[i], wh[i]
                            xl, xh = xb[j0 + i], xb[j0 + 16 + i]
                            for o in range(tile):
                                a[o] += xl * vl[o] + xh * vh[o]
                for rr in range(r):
                    a, tb, sk = acc[rr], tot[b + rr], sums[b + rr, k]
                    for o in range(tile):
                        tb[o] += df[o] * a[o] + mf[o] * sk
                b += r
        for b in range(n):
            for o in range(valid):
                out[b, lo + o] = tot[b, o] + bias[lo + o]


@njit(cache=True, fastmath={"contract"}, nogil=True)
def _mm_q8_rows(x, qs, d, bias, out):
    """:func:`_mm_q8` for several rows."""
    n, n_out = x.shape[0], out.shape[1]
    n_tiles, n_blocks, _, tile = qs.shape
    wf = np.empty((32, tile), np.float32)
    df = np.empty(tile, np.float32)
    acc = np.empty((4, tile), np.float32)
    tot = np.empty((n, tile), np.float32)
    for t in range(n_tiles):
        lo = t * tile
        valid = min(tile, n_out - lo)
        tot[:] = 0.0
        for k in range(n_blocks):
            q, j0 = qs[t, k], 32 * k
            for i in range(32):
                row, a = q[i], wf[i]
                for o in range(tile):
                    a[o] = _i8(row[o])
            dk = d[t, k]
            for o in range(tile):
                df[o] = _f16_as_f32(dk[o])
            b = 0
            while b < n:
                r = min(4, n - b)
                acc[:] = 0.0
                if r == 4:
                    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
                    for i in range(32):
                        v = wf[i]
                        x0, x1 = x[b, j0 + i], x[b + 1, j0 + i]
                        x2, x3 = x[b + 2, j0 + i], x[b + 3, j0 + i]
                        for o in range(tile):
                            e = v[o]
                            a0[o] += x0 * e
                            a1[o] += x1 * e
                            a2[o] += x2 * e
                            a3[o] += x3 * e
                else:
                    for rr in range(r):
                        a, xb = acc[rr], x[b + rr]
                        for i in range(32):
                            v, xi = wf[i], xb[j0 + i]
                            for o in range(tile):
                                a[o] += xi * v[o]
                for rr in range(r):
                    a, tb = acc[rr], tot[b + rr]
                    for o in range(tile):
                        tb[o] += df[o] * a[o]
                b += r
        for b in range(n):
            for o in range(valid):
                out[b, lo + o] = tot[b, o] + bias[lo + o]


@njit(cache=True, fastmath={"contract"}, nogil=True)
def _mm_i8_rows(x, qs, d, m, bias, out):
    """:func:`_mm_i8` for several rows: the tile is widened 32 inputs at a time."""
    n, n_out = x.shape[0], out.shape[1]
    n_tiles, n_in, tile = qs.shape
    wf = np.empty((32, tile), np.float32)
    tot = np.empty((n, tile), np.float32)
    sx = np.empty(n, np.float32)
    for b in range(n):
        s = np.float32(0.0)
        for j in range(n_in):
            s += x[b, j]
        sx[b] = s
    for t in range(n_tiles):
        lo, w = t * tile, qs[t]
        valid = min(tile, n_out - lo)
        dt, mt = d[t], m[t]
        tot[:] = 0.0
        for j0 in range(0, n_in, 32):
            width = min(32, n_in - j0)
            for i in range(width):
                row, a = w[j0 + i], wf[i]
                for o in range(tile):
                    a[o] = _i8(row[o])
            b = 0
            while b < n:
                r = min(4, n - b)
                j = 0
                if r == 4:
                    a0, a1, a2, a3 = tot[b], tot[b + 1], tot[b + 2], tot[b + 3]
                    while j + 4 <= width:
                        v0, v1, v2, v3 = wf[j], wf[j + 1], wf[j + 2], wf[j + 3]
                        c = j0 + j
                        x00, x01, x02, x03 = x[b, c], x[b, c + 1], x[b, c + 2], x[b, c + 3]
                        x10, x11, x12, x13 = (
                            x[b + 1, c],
                            x[b + 1, c + 1],
                            x[b + 1, c + 2],
                            x[b + 1, c + 3],
                        )
                        x20, x21, x22, x23 = (
                            x[b + 2, c],
                            x[b + 2, c + 1],
                            x[b + 2, c + 2],
                            x[b + 2, c + 3],
                        )
                        x30, x31, x32, x33 = (
                            x[b + 3, c],
                            x[b + 3, c + 1],
                            x[b + 3, c + 2],
                            x[b + 3, c + 3],
                        )
                        for o in range(tile):
                            e0, e1, e2, e3 = v0[o], v1[o], v2[o], v3[o]
                            a0[o] += x00 * e0 + x01 * e1 + x02 * e2 + x03 * e3
                            a1[o] += x10 * e0 + x11 * e1 + x12 * e2 + x13 * e3
                            a2[o] += x20 * e0 + x21 * e1 + x22 * e2 + x23 * e3
                            a3[o] += x30 * e0 + x31 * e1 + x32 * e2 + x33 * e3
                        j += 4
                else:
                    for rr in range(r):
                        a, xb = tot[b + rr], x[b + rr]
                        jj = 0
                        while jj + 4 <= width:
                            v0, v1, v2, v3 = wf[jj], wf[jj + 1], wf[jj + 2], wf[jj + 3]
                            c = j0 + jj
                            y0, y1, y2, y3 = xb[c], xb[c + 1], xb[c + 2], xb[c + 3]
                            for o in range(tile):
                                a[o] += y0 * v0[o] + y1 * v1[o] + y2 * v2[o] + y3 * v3[o]
                            jj += 4
                    j = width - width % 4
                for rr in range(r):  # the last inputs of a width not divisible by 4
                    a, xb = tot[b + rr], x[b + rr]
                    for jj in range(j, width):
                        v, xj = wf[jj], xb[j0 + jj]
                        for o in range(tile):
                            a[o] += xj * v[o]
                b += r
        for b in range(n):
            for o in range(valid):
                out[b, lo + o] = (
                    _f16_as_f32(dt[o]) * tot[b, o] + _f16_as_f32(mt[o]) * sx[b] + bias[lo + o]
                )


@njit(cache=True, nogil=True)
def _mm_q4_any(x, w, d, m, bias, out):
    if x.shape[0] == 1:
        _mm_q4(x, w, d, m, bias, out)
    else:
        _mm_q4_rows(x, w, d, m, bias, out)


@njit(cache=True, nogil=True)
def _mm_q8_any(x, w, d, m, bias, out):
    if x.shape[0] == 1:
        _mm_q8(x, w, d, bias, out)
    else:
        _mm_q8_rows(x, w, d, bias, out)


@njit(cache=True, nogil=True)
def _mm_i8_any(x, w, d, m, bias, out):
    if x.shape[0] == 1:
        _mm_i8(x, w, d, m, bias, out)
    else:
        _mm_i8_rows(x, w, d, m, bias, out)


def _mm(x, w, d, m, bias, out):  # pragma: no cover - replaced by the overload
    """``out = x @ W.T + bias`` for a matrix of any kind (see the module docstring)."""
    raise NotImplementedError


@overload(_mm, inline="always")
def _mm_impl(x, w, d, m, bias, out):
    if w.ndim == 3 and w.dtype in (types.float32, types.uint16):
        return lambda x, w, d, m, bias, out: _mm_dense(x, w, bias, out)
    if w.ndim == 4 and w.dtype == types.uint8:
        return lambda x, w, d, m, bias, out: _mm_q4_any(x, w, d, m, bias, out)
    if w.ndim == 4 and w.dtype == types.int8:
        return lambda x, w, d, m, bias, out: _mm_q8_any(x, w, d, m, bias, out)
    if w.ndim == 3 and w.dtype == types.int8:
        return lambda x, w, d, m, bias, out: _mm_i8_any(x, w, d, m, bias, out)
    return None


def _mm_act8(x, qs, d, m, bias, out, threads=1):  # pragma: no cover - replaced by the overload
    """:func:`_mm`, with 4- and 8-bit weights multiplied by activations rounded to int8,
    their tiles shared among ``threads`` of numba's threads."""
    raise NotImplementedError


@overload(_mm_act8, inline="always")
def _mm_act8_impl(x, qs, d, m, bias, out, threads=1):
    from lmlab.generate._int8_products import blocks_product, channels_product

    if qs.ndim == 4 and qs.dtype in (types.uint8, types.int8):
        return blocks_product
    if qs.ndim == 3 and qs.dtype == types.int8:
        return channels_product
    return lambda x, qs, d, m, bias, out, threads=1: _mm(x, qs, d, m, bias, out)


def _q4_threads(x, qs, d, m, bias, out, threads=1):
    """:func:`_mm_q4_any`, one row's tiles shared among ``threads`` of numba's threads
    (plain Python: the decoding step inlines it, see :func:`prange_only`)."""
    if threads > 1 and x.shape[0] == 1 and qs.size >= PARALLEL_BYTES:
        sums = _block_sums(x, qs.shape[1])
        tile = qs.shape[3]
        for t in prange(qs.shape[0]):
            _q4_tile(t, x, qs, d, m, sums, bias, out, np.empty(tile, np.float32),
                     np.empty(tile, np.float32))  # fmt: skip
    else:
        _mm_q4_any(x, qs, d, m, bias, out)


def _q8_threads(x, qs, d, m, bias, out, threads=1):
    """:func:`_mm_q8_any`, one row's tiles shared among ``threads`` (see :func:`_q4_threads`)."""
    if threads > 1 and x.shape[0] == 1 and qs.size >= PARALLEL_BYTES:
        tile = qs.shape[3]
        for t in prange(qs.shape[0]):
            _q8_tile(t, x, qs, d, bias, out, np.empty(tile, np.float32),
                     np.empty(tile, np.float32))  # fmt: skip
    else:
        _mm_q8_any(x, qs, d, m, bias, out)


def _mm_threads(x, qs, d, m, bias, out, threads=1):  # pragma: no cover - the overload
    """:func:`_mm`, the products of 4- and 8-bit blocks shared among ``threads``."""
    raise NotImplementedError


@overload(_mm_threads, inline="always")
def _mm_threads_impl(x, qs, d, m, bias, out, threads=1):
    if qs.ndim == 4 and qs.dtype == types.uint8:
        return _q4_threads
    if qs.ndim == 4 and qs.dtype == types.int8:
        return _q8_threads
    return lambda x, qs, d, m, bias, out, threads=1: _mm(x, qs, d, m, bias, out)


@njit(cache=True, nogil=True, inline="always")
def _product(act8, threads, x, w, d, m, bias, out):
    """``out = x @ W.T + bias``: :func:`_mm` (its block products on ``threads``), or
    :func:`_mm_act8` when ``act8``."""
    if act8:
        _mm_act8(x, w, d, m, bias, out, threads)
    else:
        _mm_threads(x, w, d, m, bias, out, threads)


@njit(cache=True, nogil=True)
def dequantize_q4(qs, d, m, t0, out):
    """Rows of a 4-bit matrix as float32: tiles ``t0..`` of ``qs`` (n_tiles, n_blocks, 16,
    T) with ``d``, ``m`` into ``out`` (rows, 32 n_blocks), one pass (for prefill)."""
    _, n_blocks, _, tile = qs.shape
    rows = out.shape[0]
    for r in range(rows):
        t, o = t0 + r // tile, r % tile
        q, dt, mt = qs[t], d[t], m[t]
        row = out[r]
        for k in range(n_blocks):
            dk, mk = _f16_as_f32(dt[k, o]), _f16_as_f32(mt[k, o])
            qk = q[k]
            for i in range(16):
                b = qk[i, o]
                row[32 * k + i] = dk * _lo4(b) + mk
                row[32 * k + 16 + i] = dk * _hi4(b) + mk


@njit(cache=True, nogil=True)
def dequantize_i8(qs, d, m, t0, out):
    """Rows of a per-channel int8 matrix as float32 (see :func:`dequantize_q4`)."""
    _, n_in, tile = qs.shape
    for r in range(out.shape[0]):
        t, o = t0 + r // tile, r % tile
        dk, mk = _f16_as_f32(d[t, o]), _f16_as_f32(m[t, o])
        q, row = qs[t], out[r]
        for j in range(n_in):
            row[j] = dk * _i8(q[j, o]) + mk


@njit(cache=True, nogil=True)
def matmul(x, w, d, m, bias, out):
    """``out = x @ W.T + bias`` for one matrix of any kind, outside the decoding step
    (lmlab.quantize's layers call it for a few rows)."""
    _mm(x, w, d, m, bias, out)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _erf(x):
    """erf in float32 without exp: Eigen's and XLA's rational approximation on [-4, 4]
    (beyond, erf is +-1 in float32); absolute error about 1e-7, twice as fast as math.erf."""
    x = min(max(x, np.float32(-4.0)), np.float32(4.0))
    x2 = x * x
    p = x2 * np.float32(-2.72614225801306e-10) + np.float32(2.77068142495902e-08)
    p = x2 * p + np.float32(-2.10102402082508e-06)
    p = x2 * p + np.float32(-5.69250639462346e-05)
    p = x2 * p + np.float32(-7.34990630326855e-04)
    p = x2 * p + np.float32(-2.95459980854025e-03)
    p = x2 * p + np.float32(-1.60960333262415e-02)
    q = x2 * np.float32(-1.45660718464996e-05) + np.float32(-2.13374055278905e-04)
    q = x2 * q + np.float32(-1.68282697438203e-03)
    q = x2 * q + np.float32(-7.37332916720468e-03)
    q = x2 * q + np.float32(-1.42647390514189e-02)
    return x * p / q


@intrinsic
def _pow2(typingctx, n):
    """``2**n`` as a float32 for an int32 ``n`` in [-126, 127]: the exponent bits set."""
    if n != types.int32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.shl(builder.add(args[0], ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(n), codegen


_LOG2E = np.float32(1.4426950408889634)
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)
_EXP_P = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                       4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))  # fmt: skip


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _exp(x):
    """``exp(x)`` in float32 for ``x <= 0`` (Cephes' ``expf``: ``2**n * e**r``, a degree-7
    polynomial for ``|r| <= ln 2 / 2``, within 2 ulp of the exact value; below -87 gives
    ~1e-38). No calls and no branches, so a loop of them vectorises, where ``math.exp``
    is a scalar libm call per attention score."""
    x = max(x, np.float32(-87.0))
    n = math.floor(x * _LOG2E + np.float32(0.5))
    r = (x - n * _LN2_HI) - n * _LN2_LO
    c0, c1, c2, c3, c4, c5 = _EXP_P
    y = ((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5
    y = (y * r) * r + r + np.float32(1.0)
    return y * _pow2(np.int32(n))


@njit(cache=True, fastmath=False, nogil=True)
def _attend(q, keys, vals, scale, out):
    """Softmax attention of the ``group`` queries ``q`` (group, hd) that share one KV head
    over its cached ``keys`` and ``vals`` (n, hd) into ``out`` (group, hd). The scores and
    the weighted values are two small matrix products through BLAS (numba's ``np.dot``:
    the cache is read once per KV head, not once per query head, and BLAS's kernels are
    vectorised where a dot product per position is not); the exponentials are a loop that
    vectorises."""
    s = np.dot(q, keys.T)  # (group, n)
    group, n = s.shape
    for h in range(group):
        sh = s[h]
        top = -np.inf
        for t in range(n):
            sh[t] *= scale
            top = max(top, sh[t])
        for t in range(n):
            sh[t] = _exp(sh[t] - top)
        inv = np.float32(1.0) / _sum(sh)
        for t in range(n):
            sh[t] *= inv
    out[:] = np.dot(s, vals)


@njit(cache=True, fastmath=False, nogil=True)
def _sum(x):
    """``sum(x)`` in sixteen interleaved partial sums: independent chains, which LLVM
    packs into a vector register."""
    n = x.shape[0]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0.0)
    s8 = s9 = s10 = s11 = s12 = s13 = s14 = s15 = np.float32(0.0)
    i = 0
    while i + 16 <= n:
        s0 += x[i]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
        s4 += x[i + 4]
        s5 += x[i + 5]
        s6 += x[i + 6]
        s7 += x[i + 7]
        s8 += x[i + 8]
        s9 += x[i + 9]
        s10 += x[i + 10]
        s11 += x[i + 11]
        s12 += x[i + 12]
        s13 += x[i + 13]
        s14 += x[i + 14]
        s15 += x[i + 15]
        i += 16
    while i < n:
        s0 += x[i]
        i += 1
    return (((s0 + s8) + (s4 + s12)) + ((s2 + s10) + (s6 + s14))) + (
        ((s1 + s9) + (s5 + s13)) + ((s3 + s11) + (s7 + s15))
    )


@njit(cache=True, fastmath=False, nogil=True)
def _norm(x, w, b, eps, rms, out):
    """LayerNorm (``rms`` false; ``b`` zeros when it has no bias) or RMSNorm into ``out``."""
    n = x.shape[0]
    if rms:
        ss = 0.0
        for i in range(n):
            ss += float(x[i]) * float(x[i])
        r = 1.0 / math.sqrt(ss / n + eps)
        for i in range(n):
            out[i] = np.float32(x[i] * r) * w[i]
        return
    mean = 0.0
    for i in range(n):
        mean += x[i]
    mean /= n
    var = 0.0
    for i in range(n):
        d = x[i] - mean
        var += d * d
    r = 1.0 / math.sqrt(var / n + eps)
    for i in range(n):
        out[i] = np.float32((x[i] - mean) * r) * w[i] + b[i]


@njit(cache=True, fastmath=False, nogil=True)
def _rope(x, cos, sin):
    """Rotate the halves of one head's vector in place, as Llama / Hugging Face do."""
    half = cos.shape[0]
    for i in range(half):
        a, b = x[i], x[i + half]
        x[i] = a * cos[i] - b * sin[i]
        x[i + half] = b * cos[i] + a * sin[i]


@njit(cache=True, fastmath=False, nogil=True, parallel=prange_only())
def decode_step(
    ids,
    rows,
    pos,
    keep,
    tok_emb,
    pos_emb,
    ln1_w,
    ln1_b,
    qkv_w,
    qkv_d,
    qkv_m,
    qkv_b,
    proj_w,
    proj_d,
    proj_m,
    proj_b,
    ln2_w,
    ln2_b,
    fc_w,
    fc_d,
    fc_m,
    fc_b,
    fc2_w,
    fc2_d,
    fc2_m,
    fc2_b,
    lnf_w,
    lnf_b,
    head_w,
    head_d,
    head_m,
    rope_cos,
    rope_sin,
    kc,
    vc,
    cfg,
    eps,
    out,
):
    """Feed tokens ``ids[i]``, each into KV-cache row ``rows[i]`` at position ``pos[i]``
    (several of one row: a chunk, causal), and write the next-token logits after the
    tokens ``keep`` into ``out`` (len(keep), V). Each matrix is ``(w, d, m)`` of one of
    the kinds of the module docstring, stacked over layers (the head: not stacked).

    Returns 0, or 1 (nothing done) when a token id, row or position is out of range."""
    n_head, n_kv, hd = cfg[N_HEAD], cfg[N_KV], cfg[HEAD_DIM]
    llama, gelu_tanh, has_mlp = cfg[LLAMA] != 0, cfg[GELU_TANH] != 0, cfg[HAS_MLP] != 0
    act8, threads = cfg[INT8_ACT] != 0, cfg[THREADS]
    n, n_layer, d, n_ff = ids.shape[0], ln1_w.shape[0], tok_emb.shape[1], cfg[FF]
    ctx, group = kc.shape[3], n_head // n_kv
    for b in range(n):
        if not (0 <= ids[b] < tok_emb.shape[0] and 0 <= pos[b] < ctx):
            return 1
        if not 0 <= rows[b] < kc.shape[1]:
            return 1
    for i in range(keep.shape[0]):
        if not 0 <= keep[i] < n:
            return 1
    scale = np.float32(1.0 / math.sqrt(hd))
    x = np.empty((n, d), np.float32)  # the residual stream
    h = np.empty((n, d), np.float32)  # its normalised copy
    y = np.empty((n, d), np.float32)  # attention output (heads concatenated)
    r = np.empty((n, d), np.float32)  # a block's contribution
    qkv = np.empty((n, (n_head + 2 * n_kv) * hd), np.float32)
    u = np.empty((n, 2 * n_ff if llama else n_ff), np.float32)
    a = np.empty((n, n_ff), np.float32)
    qg = np.empty((group, hd), np.float32)  # one KV head's queries
    og = np.empty((group, hd), np.float32)  # and their attention outputs
    k0, v0 = n_head * hd, (n_head + n_kv) * hd
    for b in range(n):
        emb = tok_emb[ids[b]]
        for i in range(d):
            x[b, i] = _w(emb[i])
        if not llama:
            for i in range(d):
                x[b, i] += pos_emb[pos[b], i]
    for layer in range(n_layer):
        for b in range(n):
            _norm(x[b], ln1_w[layer], ln1_b[layer], eps, llama, h[b])
        _product(act8, threads, h, qkv_w[layer], qkv_d[layer], qkv_m[layer], qkv_b[layer], qkv)
        for b in range(n):  # every key and value first: a chunk's tokens see each other
            p, qb = pos[b], qkv[b]
            if llama:
                for j in range(n_head + n_kv):  # queries and keys
                    _rope(qb[j * hd : (j + 1) * hd], rope_cos[p], rope_sin[p])
            kl, vl = kc[layer, rows[b]], vc[layer, rows[b]]
            for j in range(n_kv):
                for i in range(hd):
                    kl[j, p, i] = qb[k0 + j * hd + i]
                    vl[j, p, i] = qb[v0 + j * hd + i]
        for b in range(n):
            p, qb = pos[b], qkv[b]
            kl, vl = kc[layer, rows[b]], vc[layer, rows[b]]
            for g in range(n_kv):  # query heads g*group ... share KV head g
                qg[:] = qb[g * group * hd : (g + 1) * group * hd].reshape(group, hd)
                _attend(qg, kl[g, : p + 1], vl[g, : p + 1], scale, og)
                y[b, g * group * hd : (g + 1) * group * hd] = og.reshape(group * hd)
        _product(act8, threads, y, proj_w[layer], proj_d[layer], proj_m[layer], proj_b[layer], r)
        x += r
        if not has_mlp:
            continue
        for b in range(n):
            _norm(x[b], ln2_w[layer], ln2_b[layer], eps, llama, h[b])
        _product(act8, threads, h, fc_w[layer], fc_d[layer], fc_m[layer], fc_b[layer], u)
        for b in range(n):
            ub, ab = u[b], a[b]
            if llama:  # SwiGLU: silu(gate) * up
                for i in range(n_ff):
                    g = ub[i]
                    ab[i] = g / (np.float32(1.0) + np.float32(math.exp(-g))) * ub[n_ff + i]
            elif gelu_tanh:
                for i in range(n_ff):
                    v = float(ub[i])
                    inner = 0.7978845608028654 * (v + 0.044715 * v * v * v)
                    ab[i] = 0.5 * v * (1.0 + math.tanh(inner))
            else:
                for i in range(n_ff):
                    v = ub[i]
                    ab[i] = np.float32(0.5) * v * (np.float32(1.0) + _erf(v * _SQRT_HALF))
        _product(act8, threads, a, fc2_w[layer], fc2_d[layer], fc2_m[layer], fc2_b[layer], r)
        x += r
    hk = np.empty((keep.shape[0], d), np.float32)
    for i in range(keep.shape[0]):
        _norm(x[keep[i]], lnf_w, lnf_b, eps, llama, hk[i])
    _product(act8, threads, hk, head_w, head_d, head_m, np.zeros(out.shape[1], np.float32), out)
    return 0


# Kinds of weights (the embedding's, then each matrix's) whose specialisation is loaded.
WARM: set[tuple[str, ...]] = set()


def warm_up(key: tuple[str, ...]) -> None:
    """Call :func:`decode_step` once on empty inputs of ``key``'s types: compiles it, or
    loads it from numba's cache. Needs no PyTorch, so a command can start it first thing."""
    from lmlab.generate._kernel_types import DENSE, dummy_matrix

    i64 = np.zeros(0, np.int64)
    m1, m2 = np.zeros(1, np.float32), np.zeros((1, 1), np.float32)
    emb = np.zeros((1, 1), DENSE[key[0]])
    qkv, proj, fc, fc2 = (dummy_matrix(k, 1) for k in key[1:5])
    head = dummy_matrix(key[5], None)
    kv = np.zeros((1, 1, 1, 1, 1), np.float32)
    cfg = np.ones(9, np.int64)
    decode_step(i64, i64, i64, i64, emb, m2, m2, m2, *qkv, m2, *proj, m2, m2, m2, *fc, m2, *fc2,
                m2, m1, m1, *head, m2, m2, kv, kv, cfg, 1e-5, np.zeros((0, 1), np.float32))  # fmt: skip
    WARM.add(tuple(key))
