"""Numba kernel of one Transformer decoding step: one new token per row, every layer, logits.

Why: at batch 1 a small Transformer's decoding step is ~130 tiny PyTorch calls whose fixed
cost (5-15 us each) dwarfs the arithmetic; one compiled call does the same work in a
fraction of the time. ``fastmath`` stays off (results match the PyTorch forward to ~1e-6).

Layout (exported by :mod:`lmlab.generate.fastdecode`): matrices are stored transposed,
``(in, out)``, stacked over layers, so a matrix-vector product is a sequence of
``out += x[j] * W[j]`` row updates that LLVM vectorises without reassociating sums.
Missing biases are zeros; unused tensors (no MLP, no learned positions, no RoPE) are
small dummies. The KV cache is ``(L, B, n_kv, context, head_dim)``, shared with PyTorch.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Integer settings passed in ``cfg``.
N_HEAD, N_KV, HEAD_DIM, LLAMA, GELU_TANH, HAS_MLP = range(6)
_TILE = 512  # outputs per tile of a matrix product
_SQRT_HALF = np.float32(0.7071067811865476)


@njit(cache=True, fastmath=False, nogil=True)
def _matmul(x, wt, bias, out):
    """``out = x @ wt + bias`` for rows ``x`` (n, in) and ``wt`` (in, out): each weight row
    is read once for all rows, four input rows at a time, in tiles of outputs that stay in
    the L1 cache. Every row's sums run in the same order whatever ``n`` is."""
    n, (n_in, n_out) = x.shape[0], wt.shape
    for b in range(n):
        out[b, :] = bias
    for lo in range(0, n_out, _TILE):
        hi = min(lo + _TILE, n_out)
        j = 0
        while j + 4 <= n_in:
            w0, w1, w2, w3 = wt[j, lo:hi], wt[j + 1, lo:hi], wt[j + 2, lo:hi], wt[j + 3, lo:hi]
            for b in range(n):
                x0, x1, x2, x3 = x[b, j], x[b, j + 1], x[b, j + 2], x[b, j + 3]
                ob = out[b, lo:hi]
                for o in range(hi - lo):
                    ob[o] += x0 * w0[o] + x1 * w1[o] + x2 * w2[o] + x3 * w3[o]
            j += 4
        while j < n_in:
            wj = wt[j, lo:hi]
            for b in range(n):
                xj = x[b, j]
                ob = out[b, lo:hi]
                for o in range(hi - lo):
                    ob[o] += xj * wj[o]
            j += 1


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


@njit(cache=True, fastmath=False, nogil=True)
def _dot(x, y):
    """``x . y`` in four interleaved partial sums (independent chains run in parallel)."""
    n = x.shape[0]
    s0 = s1 = s2 = s3 = np.float32(0.0)
    i = 0
    while i + 4 <= n:
        s0 += x[i] * y[i]
        s1 += x[i + 1] * y[i + 1]
        s2 += x[i + 2] * y[i + 2]
        s3 += x[i + 3] * y[i + 3]
        i += 4
    while i < n:
        s0 += x[i] * y[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


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


@njit(cache=True, fastmath=False, nogil=True)
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
    qkv_b,
    proj_w,
    proj_b,
    ln2_w,
    ln2_b,
    fc_w,
    fc_b,
    fc2_w,
    fc2_b,
    lnf_w,
    lnf_b,
    head_w,
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
    tokens ``keep`` into ``out`` (len(keep), V).

    Returns 0, or 1 (nothing done) when a token id, row or position is out of range."""
    n_head, n_kv, hd = cfg[N_HEAD], cfg[N_KV], cfg[HEAD_DIM]
    llama, gelu_tanh, has_mlp = cfg[LLAMA] != 0, cfg[GELU_TANH] != 0, cfg[HAS_MLP] != 0
    n, n_layer, d = ids.shape[0], qkv_w.shape[0], tok_emb.shape[1]
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
    qkv = np.empty((n, qkv_w.shape[2]), np.float32)
    u = np.empty((n, fc_w.shape[2]), np.float32)
    a = np.empty((n, fc2_w.shape[1]), np.float32)
    scores = np.empty(ctx, np.float32)
    k0, v0 = n_head * hd, (n_head + n_kv) * hd
    for b in range(n):
        x[b] = tok_emb[ids[b]]
        if not llama:
            for i in range(d):
                x[b, i] += pos_emb[pos[b], i]
    for layer in range(n_layer):
        for b in range(n):
            _norm(x[b], ln1_w[layer], ln1_b[layer], eps, llama, h[b])
        _matmul(h, qkv_w[layer], qkv_b[layer], qkv)
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
            for j in range(n_head):
                q = qb[j * hd : (j + 1) * hd]
                keys, vals = kl[j // group], vl[j // group]
                top = -np.inf
                for t in range(p + 1):
                    s = _dot(q, keys[t]) * scale
                    scores[t] = s
                    if s > top:
                        top = s
                total = np.float32(0.0)
                for t in range(p + 1):
                    e = np.float32(math.exp(scores[t] - top))
                    scores[t] = e
                    total += e
                yj = y[b, j * hd : (j + 1) * hd]
                yj[:] = 0.0
                for t in range(p + 1):
                    w = scores[t] / total
                    vt = vals[t]
                    for i in range(hd):
                        yj[i] += w * vt[i]
        _matmul(y, proj_w[layer], proj_b[layer], r)
        x += r
        if not has_mlp:
            continue
        for b in range(n):
            _norm(x[b], ln2_w[layer], ln2_b[layer], eps, llama, h[b])
        _matmul(h, fc_w[layer], fc_b[layer], u)
        n_ff = a.shape[1]
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
        _matmul(a, fc2_w[layer], fc2_b[layer], r)
        x += r
    hk = np.empty((keep.shape[0], d), np.float32)
    for i in range(keep.shape[0]):
        _norm(x[keep[i]], lnf_w, lnf_b, eps, llama, hk[i])
    _matmul(hk, head_w, np.zeros(head_w.shape[1], np.float32), out)
    return 0
