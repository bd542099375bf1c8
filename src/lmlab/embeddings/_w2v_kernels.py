"""Numba kernels of word2vec: one call trains on one chunk of the encoded corpus.

The kernels release the GIL (``nogil=True``), so several Python threads run them at once on
different chunks and update the shared weight matrices without locks (Hogwild, as the original
word2vec and gensim do). Randomness comes from word2vec's 64-bit linear congruential generator,
seeded per chunk, so one worker with one seed always gives the same vectors.

Layout: ``syn0`` (V, D) input vectors; ``syn1`` (V-1, D) inner nodes of the Huffman tree
(hierarchical softmax); ``syn1neg`` (V, D) output vectors (negative sampling). Unused matrices
are passed as (1, D) dummies.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

MAX_EXP = 6.0
EXP_TABLE_SIZE = 1000
_grid = (np.arange(EXP_TABLE_SIZE, dtype=np.float64) / EXP_TABLE_SIZE * 2 - 1) * MAX_EXP
SIGMOID_TABLE = (1.0 / (1.0 + np.exp(-_grid))).astype(np.float32)
LOGSIG_TABLE = np.log(SIGMOID_TABLE).astype(np.float32)  # log sigmoid(x) on the same grid

_MUL = np.uint64(25214903917)
_ADD = np.uint64(11)
_S16 = np.uint64(16)
_S32 = np.uint64(32)
_M32 = np.uint64(0xFFFFFFFF)
# CBOW with shared negatives: consecutive centre words that use one draw (2 measured ~30%
# faster end to end than a draw per word, analogy and WS-353 within noise)
CBOW_SHARE = 2


@njit(inline="always", fastmath=True, error_model="numpy")
def _next(rng):
    return rng * _MUL + _ADD


@njit(inline="always", fastmath=True, error_model="numpy")
def _uniform(rng):
    """A float in [0, 1) from the high bits of the generator state."""
    return np.float32((rng >> _S16) & np.uint64(0xFFFFFF)) * np.float32(1.0 / 16777216.0)


@njit(inline="always", fastmath=True, error_model="numpy")
def _grad(f, label, alpha, sig_tab, logsig_tab):
    """Scaled gradient ``(label - sigmoid(f)) * alpha`` and the loss ``-log p(label)``."""
    if f >= MAX_EXP:
        lp = math.log1p(math.exp(-f))  # -log sigmoid(f)
        return np.float32((label - 1.0) * alpha), (lp if label == 1.0 else f + lp)
    if f <= -MAX_EXP:
        lp = math.log1p(math.exp(f))  # -log sigmoid(-f)
        return np.float32(label * alpha), (lp if label == 0.0 else lp - f)
    i = int((f + MAX_EXP) * (EXP_TABLE_SIZE / MAX_EXP / 2))
    if i >= EXP_TABLE_SIZE:
        i = EXP_TABLE_SIZE - 1
    s = sig_tab[i]
    if label == 1.0:
        loss = -float(logsig_tab[i])
    else:
        loss = -float(logsig_tab[EXP_TABLE_SIZE - 1 - i])
    return np.float32((label - s) * alpha), loss


@njit(inline="always", fastmath=True, error_model="numpy")
def _update_rows(l1, syn1, rows, labels, n, alpha, neu1e, fs, sig_tab, logsig_tab):
    """Output units ``rows[:n]`` with targets ``labels``: all dot products first, then updates.

    The dot products do not depend on each other (the input gradient only accumulates in
    ``neu1e``), so computing them in a separate pass lets the CPU fetch all rows at once
    instead of waiting for one cache miss after another; the result equals word2vec's
    one-row-at-a-time loop unless a row repeats (a negative drawn twice).
    """
    d = l1.shape[0]
    for t in range(n):
        row = rows[t]
        f = np.float32(0.0)
        for k in range(d):
            f += l1[k] * syn1[row, k]
        fs[t] = f
    loss = 0.0
    for t in range(n):
        g, lo = _grad(fs[t], labels[t], alpha, sig_tab, logsig_tab)
        loss += lo
        if g == 0.0:  # saturated and right: nothing to learn
            continue
        row = rows[t]
        for k in range(d):
            neu1e[k] += g * syn1[row, k]
            syn1[row, k] += g * l1[k]
    return loss


@njit(inline="always", fastmath=True, error_model="numpy")
def _outputs(l1, word, syn1, syn1neg, table, codes, points, codelens, hs, negative, alpha,
             neu1e, rng, sig_tab, logsig_tab, rows, labels, fs):  # fmt: skip
    """All output units for predicting ``word`` from ``l1`` (HS path and/or negatives).

    ``rows``, ``labels`` and ``fs`` are scratch buffers at least ``max(code length,
    negative + 1)`` long.
    """
    loss = 0.0
    if hs:
        n = codelens[word]
        for j in range(n):
            rows[j] = points[word, j]
            labels[j] = 1.0 - np.float32(codes[word, j])
        loss += _update_rows(l1, syn1, rows, labels, n, alpha, neu1e, fs, sig_tab, logsig_tab)
    if negative > 0:
        rng, n = _draw_negatives(word, table, negative, rng, rows, labels)
        loss += _update_rows(l1, syn1neg, rows, labels, n, alpha, neu1e, fs, sig_tab, logsig_tab)
    return rng, loss


@njit(inline="always", fastmath=True, error_model="numpy")
def _draw_negatives(word, table, negative, rng, rows, labels):
    """``rows[:n]``: the true ``word`` (label 1), then ``negative`` draws from the unigram
    table (label 0; a draw equal to ``word`` is dropped, as word2vec does)."""
    rows[0] = word
    labels[0] = 1.0
    n = 1
    n_table = np.uint64(table.shape[0])
    for _ in range(negative):
        rng = _next(rng)
        target = table[(((rng >> _S16) & _M32) * n_table) >> _S32]
        if target != word:
            rows[n] = target
            labels[n] = 0.0
            n += 1
    return rng, n


@njit(inline="always", fastmath=True, error_model="numpy")
def _retarget_negatives(word, rows, labels, n):
    """Reuse the negatives ``rows[1:n]`` of the last draw for a new true ``word``: it takes
    row 0 (label 1) and any negative equal to it is dropped, as a fresh draw would."""
    rows[0] = word
    labels[0] = 1.0
    m = 1
    for t in range(1, n):
        if rows[t] != word:
            rows[m] = rows[t]
            labels[m] = 0.0
            m += 1
    return m


@njit(nogil=True, fastmath=True, cache=True, error_model="numpy")
def train_chunk(
    raw, remap, keep, syn0, syn1, syn1neg, table, codes, points, codelens,
    sg, hs, negative, window, alpha_start, alpha_end, seed, max_sentence, sig_tab, logsig_tab,
    shared_negatives=False,
):  # fmt: skip
    """Train on ``raw`` (provisional ids, -1 = sentence break); return (loss sum, predictions, words kept).

    ``shared_negatives`` (negative sampling without hierarchical softmax): skip-gram draws
    negatives once per centre word for every context word of its window (Ji et al. 2016,
    "Parallelizing Word2Vec in Shared and Distributed Memory"; also Amazon's BlazingText), so
    the random output rows are fetched from memory once per window instead of once per pair;
    CBOW, which makes one prediction per centre word, draws once per ``CBOW_SHARE``
    consecutive centre words, whose updates then find those rows in cache. Updates stay
    sequential, prediction after prediction, as in word2vec.
    """
    d = syn0.shape[1]
    n = raw.shape[0]
    sent = np.empty(max_sentence, np.int32)
    neu1 = np.empty(d, np.float32)
    neu1e = np.empty(d, np.float32)
    width = max(codes.shape[1], negative + 1)
    rows = np.empty(width, np.int32)
    labels = np.empty(width, np.float32)
    fs = np.empty(width, np.float32)
    rng = np.uint64(seed) * _MUL + _ADD
    w_window = np.uint64(window)
    loss = 0.0
    n_pred = 0
    n_kept = 0
    n_rows = 0  # rows of the last draw of negatives (CBOW with shared negatives)
    reuse = 0  # predictions made with it so far
    i = 0
    while i < n:
        length = 0
        while i < n and length < max_sentence:
            w = raw[i]
            i += 1
            if w < 0:
                break
            w = remap[w]
            if w < 0:
                continue
            if keep[w] < 1.0:
                rng = _next(rng)
                if keep[w] < _uniform(rng):
                    continue
            sent[length] = w
            length += 1
        n_kept += length
        alpha = np.float32(alpha_start + (alpha_end - alpha_start) * (i / n))
        for pos in range(length):
            rng = _next(rng)
            b = int((((rng >> _S16) & _M32) * w_window) >> _S32)
            start = max(0, pos - window + b)
            end = min(length, pos + window + 1 - b)
            word = sent[pos]
            if sg and shared_negatives and negative > 0 and not hs:
                rng, nrows = _draw_negatives(word, table, negative, rng, rows, labels)
                for pos2 in range(start, end):
                    if pos2 == pos:
                        continue
                    ctx = sent[pos2]
                    l1 = syn0[ctx]
                    neu1e[:] = 0.0
                    loss += _update_rows(
                        l1, syn1neg, rows, labels, nrows, alpha, neu1e, fs, sig_tab, logsig_tab
                    )
                    n_pred += 1
                    for k in range(d):
                        syn0[ctx, k] += neu1e[k]
            elif sg:
                for pos2 in range(start, end):
                    if pos2 == pos:
                        continue
                    ctx = sent[pos2]
                    l1 = syn0[ctx]
                    neu1e[:] = 0.0
                    rng, lo = _outputs(
                        l1,
                        word,
                        syn1,
                        syn1neg,
                        table,
                        codes,
                        points,
                        codelens,
                        hs,
                        negative,
                        alpha,
                        neu1e,
                        rng,
                        sig_tab,
                        logsig_tab,
                        rows,
                        labels,
                        fs,
                    )
                    loss += lo
                    n_pred += 1
                    for k in range(d):
                        syn0[ctx, k] += neu1e[k]
            else:
                count = 0
                neu1[:] = 0.0
                for pos2 in range(start, end):
                    if pos2 != pos:
                        ctx = sent[pos2]
                        for k in range(d):
                            neu1[k] += syn0[ctx, k]
                        count += 1
                if count == 0:
                    continue
                inv = np.float32(1.0 / count)
                for k in range(d):
                    neu1[k] *= inv
                neu1e[:] = 0.0
                if shared_negatives and negative > 0 and not hs:
                    if reuse == 0:
                        rng, n_rows = _draw_negatives(word, table, negative, rng, rows, labels)
                    else:
                        n_rows = _retarget_negatives(word, rows, labels, n_rows)
                    reuse = (reuse + 1) % CBOW_SHARE
                    lo = _update_rows(
                        neu1, syn1neg, rows, labels, n_rows, alpha, neu1e, fs, sig_tab, logsig_tab
                    )
                else:
                    rng, lo = _outputs(
                        neu1,
                        word,
                        syn1,
                        syn1neg,
                        table,
                        codes,
                        points,
                        codelens,
                        hs,
                        negative,
                        alpha,
                        neu1e,
                        rng,
                        sig_tab,
                        logsig_tab,
                        rows,
                        labels,
                        fs,
                    )
                loss += lo
                n_pred += 1
                for pos2 in range(start, end):
                    if pos2 != pos:
                        ctx = sent[pos2]
                        for k in range(d):
                            syn0[ctx, k] += neu1e[k]
    return loss, n_pred, n_kept
