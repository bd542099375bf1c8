"""Matrix products of 4- and 8-bit weight blocks with activations rounded to 8 bits, on the
CPU's integer dot-product instruction, as llama.cpp computes its Q4 x Q8 products.

Why: the float kernels of :mod:`lmlab.generate._fastdecode_kernels` widen every 4-bit
weight to float32 before multiplying, so a decoding step of SmolLM2 spends ~16 ms a token
on that arithmetic - more than streaming its 98 MB of blocks takes. Rounding each block of
32 activations to int8 (one float scale per block, ``max|x| / 127``: llama.cpp's Q8_0/Q8_1)
lets AVX-512 VNNI's ``vpdpbusd`` do 64 byte multiply-adds, summed in fours into 16 int32
lanes, per instruction; the block's float scales are applied once per block.

For a block of 32 inputs with weights ``d*q + m`` and activations ``x ~ da * a``:
``sum(w * x) ~ d * da * sum(q * a) + m * da * sum(a)``. The offset's term takes the sum of
the *rounded* activations (llama.cpp's Q8_1 ``s``), not the exact one: ``d*q`` alone is far
from centred (``q`` averages ~8, ``m`` ~ -8d), and only with the same rounded activations in
both terms do their rounding errors cancel into ``w * (x^ - x)``. With the exact sum,
SmolLM2's perplexity rose 2.4% instead of 0.7% (measured). Q8_0's signed weights meet signed
activations through ``(q + 128) * a - 128 * a`` (vpdpbusd multiplies unsigned by signed
bytes).

The weights are read in the float kernels' tiles, (n_blocks, rows, 64 outputs) per tile,
so nothing is stored twice: each group of four input rows is transposed in registers into
four inputs per int32 lane. On a CPU without AVX-512 VNNI the same products are written as
plain vector arithmetic (LLVM picks the instructions); :data:`VNNI` says which.

The decoding step inlines these products; numba's cache of it tracks only the step's own
file, so ``_fastdecode_kernels`` drops that cache when this file changes.
"""

from __future__ import annotations

import numpy as np
from llvmlite import binding as _ll
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# (importing the float kernels also chooses numba's CPU features, before anything compiles)
from lmlab.generate._fastdecode_kernels import PARALLEL_BYTES, _f16_as_f32, _i8, prange_only


def _host_has_vnni() -> bool:
    try:
        return bool(_ll.get_host_cpu_features().get("avx512vnni"))
    except RuntimeError:  # pragma: no cover - unknown host
        return False


VNNI = _host_has_vnni()

TILE = 64  # outputs per tile, as in the float kernels' layout

_I8, _I32, _F32, _F16 = ir.IntType(8), ir.IntType(32), ir.FloatType(), ir.HalfType()
_V64I8, _V16I32 = ir.VectorType(_I8, 64), ir.VectorType(_I32, 16)
_V16F, _V16H = ir.VectorType(_F32, 16), ir.VectorType(_F16, 16)
# Transpose of four rows of 64 output bytes into 4 registers of 16 outputs x 4 inputs:
# interleave rows (0, 1) and (2, 3) byte by byte, then take four bytes per output.
_PAIRS = ir.Constant(ir.VectorType(_I32, 128), [v for o in range(64) for v in (o, 64 + o)])
_QUADS = [
    ir.Constant(
        ir.VectorType(_I32, 64),
        [
            v
            for o in range(16 * r, 16 * r + 16)
            for v in (2 * o, 2 * o + 1, 128 + 2 * o, 129 + 2 * o)
        ],
    )
    for r in range(4)
]


def _splat(builder, value, vtype):
    """``value`` in every lane of ``vtype``."""
    undef = ir.Constant(vtype, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(_I32, 0))
    zeros = ir.Constant(ir.VectorType(_I32, vtype.count), [0] * vtype.count)
    return builder.shuffle_vector(one, undef, zeros)


def _dot_bytes(builder, acc, u, s, vnni: bool):
    """``acc`` + for each int32 lane, the sum of its four unsigned bytes of ``u`` times the
    four signed bytes of ``s`` (``vpdpbusd``)."""
    if vnni:
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(_V16I32, [_V16I32, _V16I32, _V16I32]),
            "llvm.x86.avx512.vpdpbusd.512",
        )
        return builder.call(fn, [acc, builder.bitcast(u, _V16I32), builder.bitcast(s, _V16I32)])
    v64 = ir.VectorType(_I32, 64)
    u, s = builder.bitcast(u, _V64I8), builder.bitcast(s, _V64I8)
    prod = builder.mul(builder.zext(u, v64), builder.sext(s, v64))
    for c in range(4):
        mask = ir.Constant(_V16I32, [4 * q + c for q in range(16)])
        acc = builder.add(acc, builder.shuffle_vector(prod, ir.Constant(v64, ir.Undefined), mask))
    return acc


def _make_tile(kind: str, vnni: bool):
    """An intrinsic computing one tile's 64 outputs for one row of int8 activations:
    ``(qs, a, da, sa, sx, d, m, n_blocks, out)``, all addresses but ``n_blocks``:
    ``qs`` the tile's weights (n_blocks, 16 or 32, 64) bytes, ``a`` the row's int8
    activations, ``da``/``sx`` float32 and ``sa`` int32 per block (scale, ``da`` times the
    sum of the int8 values, that sum), ``d``/``m`` the tile's float16 scales and offsets, ``out`` 64
    float32. ``kind``: ``q4`` (4-bit blocks, ``d*q + m``, scales (n_blocks, 64)), ``q8``
    (Q8_0: signed bytes, ``d*q``) or ``i8`` (lmlab's int8 per output channel: signed bytes,
    ``d*q + m``, one scale and offset per output, (64,))."""
    q4, per_channel = kind == "q4", kind == "i8"
    rows = 16 if q4 else 32

    @intrinsic
    def tile(typingctx, qs, a, da, sa, sx, d, m, nb, out):
        if not all(isinstance(t, types.Integer) for t in (qs, a, da, sa, sx, d, m, nb, out)):
            return None
        sig = types.void(types.uintp, types.uintp, types.uintp, types.uintp, types.uintp,
                         types.uintp, types.uintp, types.intp, types.uintp)  # fmt: skip

        def codegen(context, builder, signature, args):
            qs_p, a_p, da_p, sa_p, sx_p, d_p, m_p, nb_v, out_p = args
            i64 = ir.IntType(64)

            def at(base, offset, ty):
                return builder.inttoptr(builder.add(base, offset), ty.as_pointer())

            def const(v):
                return ir.Constant(i64, v)

            zero_f = ir.Constant(_V16F, [0.0] * 16)
            tots = [cgutils.alloca_once_value(builder, zero_f) for _ in range(4)]
            low, shift = ir.Constant(_V64I8, [15] * 64), ir.Constant(_V64I8, [4] * 64)
            sign = ir.Constant(_V64I8, [0x80] * 64)
            with cgutils.for_range(builder, nb_v) as loop:
                k = builder.zext(loop.index, i64) if loop.index.type != i64 else loop.index
                qbase = builder.mul(k, const(rows * TILE))
                abase = builder.mul(k, const(32))
                accs = [ir.Constant(_V16I32, [0] * 16)] * 4
                for j in range(rows // 4):
                    r4 = [
                        builder.load(at(qs_p, builder.add(qbase, const((4 * j + c) * TILE)), _V64I8),
                                     align=1)
                        for c in range(4)
                    ]  # fmt: skip
                    p01 = builder.shuffle_vector(r4[0], r4[1], _PAIRS)
                    p23 = builder.shuffle_vector(r4[2], r4[3], _PAIRS)
                    offs = (4 * j, 16 + 4 * j) if q4 else (4 * j,)
                    acts = [
                        _splat(builder, builder.load(at(a_p, builder.add(abase, const(o)), _I32),
                                                     align=1), _V16I32)
                        for o in offs
                    ]  # fmt: skip
                    for r in range(4):
                        x = builder.shuffle_vector(p01, p23, _QUADS[r])
                        if q4:
                            us = (builder.and_(x, low), builder.lshr(x, shift))
                        else:
                            us = (builder.xor(x, sign),)
                        for u, act in zip(us, acts, strict=True):
                            accs[r] = _dot_bytes(builder, accs[r], u, act, vnni)
                kf = builder.mul(k, const(4))
                dak = _splat(builder, builder.load(at(da_p, kf, _F32), align=4), _V16F)
                sxk = _splat(builder, builder.load(at(sx_p, kf, _F32), align=4), _V16F)
                if not q4:  # (q + 128) * a summed: take 128 * sum(a) back
                    sak = builder.load(at(sa_p, kf, _I32), align=4)
                    corr = _splat(builder, builder.shl(sak, ir.Constant(_I32, 7)), _V16I32)
                for r in range(4):
                    acc = accs[r] if q4 else builder.sub(accs[r], corr)
                    off = (
                        const(2 * 16 * r)
                        if per_channel
                        else builder.mul(builder.add(builder.mul(k, const(TILE)), const(16 * r)),
                                         const(2))
                    )  # fmt: skip
                    dv = builder.fpext(builder.load(at(d_p, off, _V16H), align=2), _V16F)
                    term = builder.fmul(dv, builder.fmul(builder.sitofp(acc, _V16F), dak))
                    if q4 or per_channel:
                        mv = builder.fpext(builder.load(at(m_p, off, _V16H), align=2), _V16F)
                        term = builder.fadd(term, builder.fmul(mv, sxk))
                    builder.store(builder.fadd(builder.load(tots[r]), term), tots[r])
            for r in range(4):
                builder.store(builder.load(tots[r]), at(out_p, const(64 * r), _V16F), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_q4_tile = _make_tile("q4", VNNI)
_q8_tile = _make_tile("q8", VNNI)
_i8_tile = _make_tile("i8", VNNI)


@njit(cache=True, nogil=True)
def quantize_rows(x, a, da, sa, sx):
    """Each row of ``x`` (n, 32 n_blocks) float32 rounded to int8 ``a`` in blocks of 32:
    ``da`` = max|x| / 127 per block, ``a = rint(x / da)``, ``sa`` the sum of a block's int8
    values, ``sx = da * sa`` the sum of its rounded activations (see the module docstring)."""
    n, width = x.shape
    for b in range(n):
        xb, ab = x[b], a[b]
        for k in range(width // 32):
            amax = np.float32(0.0)
            for i in range(32 * k, 32 * k + 32):
                amax = max(amax, abs(xb[i]))
            scale = amax / np.float32(127.0)
            inv = np.float32(127.0) / amax if amax > 0 else np.float32(0.0)
            t = 0
            for i in range(32 * k, 32 * k + 32):
                q = np.int32(np.rint(xb[i] * inv))
                ab[i] = q
                t += q
            da[b, k], sa[b, k], sx[b, k] = scale, t, scale * np.float32(t)


@njit(cache=True, nogil=True, inline="always")
def _blocks_tile(t, qs, d, m, a, da, sa, sx, bias, out, acc):
    """Tile ``t`` of a 4- or 8-bit block matrix for every row (see :func:`blocks_product`)."""
    n_blocks, lo = qs.shape[1], t * TILE
    valid = min(TILE, out.shape[1] - lo)
    qt, dt, mt = qs[t].ctypes.data, d[t].ctypes.data, m[t].ctypes.data
    for b in range(out.shape[0]):
        ab, dab, sab, sxb = (
            a[b].ctypes.data,
            da[b].ctypes.data,
            sa[b].ctypes.data,
            sx[b].ctypes.data,
        )
        if qs.shape[2] == 16:
            _q4_tile(qt, ab, dab, sab, sxb, dt, mt, n_blocks, acc.ctypes.data)
        else:
            _q8_tile(qt, ab, dab, sab, sxb, dt, mt, n_blocks, acc.ctypes.data)
        for o in range(valid):
            out[b, lo + o] = acc[o] + bias[lo + o]


def blocks_product(x, qs, d, m, bias, out, threads=1):
    """``out = x @ W.T + bias`` for 4-bit blocks (``qs`` (n_tiles, n_blocks, 16, 64)
    nibbles, ``d``/``m`` float16 bits) or 8-bit blocks (Q8_0: ``qs`` (n_tiles, n_blocks, 32,
    64) int8; ``m`` unused) in the float kernels' layout, each row of ``x`` rounded to int8
    per block of 32 inputs (:func:`quantize_rows`). With ``threads`` > 1 the tiles of a
    matrix of :data:`PARALLEL_BYTES` or more are shared among numba's threads
    (``numba.set_num_threads`` sets how many)."""
    a, da, sa, sx = _rounded(x, qs.shape[1])
    if threads > 1 and qs.size >= PARALLEL_BYTES:
        for t in prange(qs.shape[0]):
            _blocks_tile(t, qs, d, m, a, da, sa, sx, bias, out, np.empty(TILE, np.float32))
    else:
        acc = np.empty(TILE, np.float32)
        for t in range(qs.shape[0]):
            _blocks_tile(t, qs, d, m, a, da, sa, sx, bias, out, acc)


@njit(cache=True, nogil=True, inline="always")
def _channels_tile(t, x, qs, d, m, a, da, sa, sx, bias, out, acc):
    """Tile ``t`` of an int8 per-channel matrix for every row (see :func:`channels_product`)."""
    n_in, lo = qs.shape[1], t * TILE
    n_blocks = n_in // 32
    valid = min(TILE, out.shape[1] - lo)
    w, dt, mt = qs[t], d[t], m[t]
    for b in range(out.shape[0]):
        if n_blocks:
            _i8_tile(w.ctypes.data, a[b].ctypes.data, da[b].ctypes.data, sa[b].ctypes.data,
                     sx[b].ctypes.data, dt.ctypes.data, mt.ctypes.data, n_blocks,
                     acc.ctypes.data)  # fmt: skip
        else:
            acc[:] = 0.0
        for j in range(32 * n_blocks, n_in):
            xj, wj = x[b, j], w[j]
            for o in range(TILE):
                acc[o] += xj * (_f16_as_f32(dt[o]) * _i8(wj[o]) + _f16_as_f32(mt[o]))
        for o in range(valid):
            out[b, lo + o] = acc[o] + bias[lo + o]


def channels_product(x, qs, d, m, bias, out, threads=1):
    """``out = x @ W.T + bias`` for lmlab's int8 per output channel (``qs`` (n_tiles, in, 64)
    int8, ``d``/``m`` (n_tiles, 64) float16 bits: ``W[o, i] = d[o] * q + m[o]``), each row
    of ``x`` rounded to int8 per block of 32 inputs; the inputs after the last whole block
    (a width not divisible by 32) are multiplied in float32. ``threads``: as
    :func:`blocks_product`."""
    a, da, sa, sx = _rounded(x, qs.shape[1] // 32)
    if threads > 1 and qs.size >= PARALLEL_BYTES:
        for t in prange(qs.shape[0]):
            _channels_tile(t, x, qs, d, m, a, da, sa, sx, bias, out, np.empty(TILE, np.float32))
    else:
        acc = np.empty(TILE, np.float32)
        for t in range(qs.shape[0]):
            _channels_tile(t, x, qs, d, m, a, da, sa, sx, bias, out, acc)


@njit(cache=True, nogil=True)
def _rounded(x, n_blocks):
    """The rows of ``x`` rounded to int8 (:func:`quantize_rows`), in new arrays."""
    n = x.shape[0]
    a = np.empty((n, 32 * n_blocks), np.int8)
    da = np.empty((n, n_blocks), np.float32)
    sa = np.empty((n, n_blocks), np.int32)
    sx = np.empty((n, n_blocks), np.float32)
    quantize_rows(x, a, da, sa, sx)
    return a, da, sa, sx


# The products as plain Python (compiled where they are used: the decoding step inlines them
# through its overload) and compiled on their own, for a call from Python.
matmul_x8 = njit(cache=True, nogil=True, parallel=prange_only())(blocks_product)
matmul_i8_x8 = njit(cache=True, nogil=True, parallel=prange_only())(channels_product)
