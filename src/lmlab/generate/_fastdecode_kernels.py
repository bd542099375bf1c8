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


@njit(cache=True, fastmath=False, nogil=True)
def _matvec(x, wt, bias, out):
    """``out = x @ wt + bias`` with ``wt`` of shape (in, out); four input rows at a time."""
    n_in, n_out = wt.shape
    for o in range(n_out):
        out[o] = bias[o]
    j = 0
    while j + 4 <= n_in:
        x0, x1, x2, x3 = x[j], x[j + 1], x[j + 2], x[j + 3]
        w0, w1, w2, w3 = wt[j], wt[j + 1], wt[j + 2], wt[j + 3]
        for o in range(n_out):
            out[o] += x0 * w0[o] + x1 * w1[o] + x2 * w2[o] + x3 * w3[o]
        j += 4
    while j < n_in:
        xj, wj = x[j], wt[j]
        for o in range(n_out):
            out[o] += xj * wj[o]
        j += 1


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
    pos,
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
    """Feed token ``ids[b]`` at position ``pos[b]`` of every row ``b``: write its keys and
    values into ``kc``/``vc`` and the next-token logits into ``out`` (B, V).

    Returns 0, or 1 (nothing done) when a token id or a position is out of range."""
    n_head, n_kv, hd = cfg[N_HEAD], cfg[N_KV], cfg[HEAD_DIM]
    llama, gelu_tanh, has_mlp = cfg[LLAMA] != 0, cfg[GELU_TANH] != 0, cfg[HAS_MLP] != 0
    n_layer, d = qkv_w.shape[0], tok_emb.shape[1]
    group = n_head // n_kv
    scale = np.float32(1.0 / math.sqrt(hd))
    x = np.empty(d, np.float32)
    h = np.empty(d, np.float32)
    y = np.empty(d, np.float32)
    r = np.empty(d, np.float32)
    qkv = np.empty(qkv_w.shape[2], np.float32)
    u = np.empty(fc_w.shape[2], np.float32)
    a = np.empty(fc2_w.shape[1], np.float32)
    ctx = kc.shape[3]
    scores = np.empty(ctx, np.float32)
    for b in range(ids.shape[0]):
        if not (0 <= ids[b] < tok_emb.shape[0] and 0 <= pos[b] < ctx):
            return 1
    no_bias = np.zeros(head_w.shape[1], np.float32)
    for b in range(ids.shape[0]):
        p = pos[b]
        x[:] = tok_emb[ids[b]]
        if not llama:
            for i in range(d):
                x[i] += pos_emb[p, i]
        for layer in range(n_layer):
            _norm(x, ln1_w[layer], ln1_b[layer], eps, llama, h)
            _matvec(h, qkv_w[layer], qkv_b[layer], qkv)
            k0 = n_head * hd
            v0 = k0 + n_kv * hd
            if llama:
                for j in range(n_head):
                    _rope(qkv[j * hd : (j + 1) * hd], rope_cos[p], rope_sin[p])
                for j in range(n_kv):
                    _rope(qkv[k0 + j * hd : k0 + (j + 1) * hd], rope_cos[p], rope_sin[p])
            kl, vl = kc[layer, b], vc[layer, b]
            for j in range(n_kv):
                for i in range(hd):
                    kl[j, p, i] = qkv[k0 + j * hd + i]
                    vl[j, p, i] = qkv[v0 + j * hd + i]
            for j in range(n_head):
                q = qkv[j * hd : (j + 1) * hd]
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
                yj = y[j * hd : (j + 1) * hd]
                yj[:] = 0.0
                for t in range(p + 1):
                    w = scores[t] / total
                    vt = vals[t]
                    for i in range(hd):
                        yj[i] += w * vt[i]
            _matvec(y, proj_w[layer], proj_b[layer], r)
            for i in range(d):
                x[i] += r[i]
            if not has_mlp:
                continue
            _norm(x, ln2_w[layer], ln2_b[layer], eps, llama, h)
            _matvec(h, fc_w[layer], fc_b[layer], u)
            n_ff = a.shape[0]
            if llama:  # SwiGLU: silu(gate) * up
                for i in range(n_ff):
                    g = u[i]
                    a[i] = g / (np.float32(1.0) + np.float32(math.exp(-g))) * u[n_ff + i]
            elif gelu_tanh:
                for i in range(n_ff):
                    v = float(u[i])
                    inner = 0.7978845608028654 * (v + 0.044715 * v * v * v)
                    a[i] = 0.5 * v * (1.0 + math.tanh(inner))
            else:
                for i in range(n_ff):
                    v = float(u[i])
                    a[i] = 0.5 * v * (1.0 + math.erf(v * 0.7071067811865476))
            _matvec(a, fc2_w[layer], fc2_b[layer], r)
            for i in range(d):
                x[i] += r[i]
        _norm(x, lnf_w, lnf_b, eps, llama, h)
        _matvec(h, head_w, no_bias, out[b])
    return 0
