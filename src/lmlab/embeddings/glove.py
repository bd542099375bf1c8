"""GloVe (Pennington et al., 2014): weighted least squares on log co-occurrence counts.

For every non-zero ``X_ij`` the loss is ``f(X_ij) (w_i . c_j + b_i + b'_j - log X_ij)^2`` with
``f(x) = min(1, (x / x_max)^alpha)``, minimised by AdaGrad over the non-zeros in a shuffled
order, as Stanford's ``glove.c`` does (same initialisation, learning rate and update). The saved
vector of a word is ``w_i + c_i`` (Stanford's ``-model 2``). Threads share the parameters
without locks; each job is a slice of the shuffled non-zeros.

>>> from lmlab.embeddings.corpus import encode_corpus
>>> corpus = encode_corpus([["the", "cat", "sat", "on", "the", "mat"]] * 20)
>>> train_glove(corpus, GloveConfig(min_count=1, epochs=2, progress=False)).vectors.vector_size
100
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from lmlab.embeddings._parallel import run_jobs
from lmlab.embeddings._w2v_kernels import _ADD, _MUL, _S32
from lmlab.embeddings.cooccur import cooccurrence
from lmlab.embeddings.corpus import EncodedCorpus
from lmlab.embeddings.vectors import Vectors
from lmlab.embeddings.vocab import Vocab
from lmlab.embeddings.word2vec import TrainResult, resolve_workers
from lmlab.errors import LmlabError
from lmlab.progress import progress_bar


@dataclass
class GloveConfig:
    """Settings; defaults follow Stanford GloVe's demo (window 10, x_max 10, alpha 0.75)."""

    vector_size: int = 100
    window: int = 10
    symmetric: bool = True
    min_count: int = 5
    max_vocab: int | None = None
    x_max: float = 10.0
    alpha: float = 0.75
    eta: float = 0.05  # AdaGrad initial learning rate
    grad_clip: float = 100.0  # clip each gradient component (glove.c's grad_clip_value)
    reshuffle: bool = True  # a new order every epoch (glove.c shuffles once; this scores higher)
    epochs: int = 15
    workers: int = 0  # 0: all cores
    seed: int = 1
    chunk_pairs: int = 500_000
    progress: bool = True


@njit(nogil=True, fastmath=True, cache=True, error_model="numpy")
def glove_step(pairs, pairs_f, w, c, bw, bc, gw, gc, gbw, gbc, eta, clip):
    """One AdaGrad pass over the given non-zeros; returns the summed loss (before updates).

    ``pairs`` (n, 4) int32 holds records (row, column, log x, f(x)); ``pairs_f`` is the same
    memory viewed as float32, for the last two fields. One 16-byte record per non-zero keeps
    the per-epoch reshuffle to a single gather.

    The update is that of Stanford's current ``glove.c``: vector gradients clipped to
    ``[-clip, clip]`` and scaled by ``eta``; bias steps use AdaGrad without ``eta``.
    """
    d = w.shape[1]
    cost = 0.0
    sink = np.float32(0.0)
    last = pairs.shape[0] - 1
    for n in range(pairs.shape[0]):
        if n < last:  # touch the next pair's rows so their cache misses overlap with this pair
            i2, j2 = pairs[n + 1, 0], pairs[n + 1, 1]
            for k in range(0, d, 16):
                sink += w[i2, k] + c[j2, k] + gw[i2, k] + gc[j2, k]
        i = pairs[n, 0]
        j = pairs[n, 1]
        diff = np.float32(0.0)
        for k in range(d):
            diff += w[i, k] * c[j, k]
        diff += bw[i] + bc[j] - pairs_f[n, 2]
        fdiff = pairs_f[n, 3] * diff
        cost += 0.5 * fdiff * diff
        for k in range(d):  # gradients clipped at +-clip, then scaled by eta (as glove.c)
            t1 = min(max(fdiff * c[j, k], -clip), clip) * eta
            t2 = min(max(fdiff * w[i, k], -clip), clip) * eta
            w[i, k] -= t1 / np.sqrt(gw[i, k])
            c[j, k] -= t2 / np.sqrt(gc[j, k])
            gw[i, k] += t1 * t1
            gc[j, k] += t2 * t2
        # biases: glove.c's AdaGrad step without eta
        bw[i] -= fdiff / np.sqrt(gbw[i])
        bc[j] -= fdiff / np.sqrt(gbc[j])
        gbw[i] += fdiff * fdiff
        gbc[j] += fdiff * fdiff
    if sink == np.float32(-1.2345e30):  # never true; keeps the touching loads alive
        cost += 1.0
    return cost


@njit(nogil=True, cache=True)
def shuffle_records(src, dst, seed, n_buckets=1024):
    """Write a uniformly random permutation of the rows of ``src`` into ``dst``.

    Two cache-friendly passes instead of one random gather: each record goes to a random
    bucket (sequential writes into ``n_buckets`` streams), then each bucket, small enough for
    the cache, is Fisher-Yates shuffled. Sorting by (random bucket, random position) is a
    uniform permutation. Random numbers: 64-bit LCG, high 32 bits, multiply-shift ranges.
    """
    rng = np.uint64(seed) * _MUL + _ADD
    n, width = src.shape
    bucket = np.empty(n, np.int32)
    start = np.zeros(n_buckets + 1, np.int64)
    nb = np.uint64(n_buckets)
    for i in range(n):
        rng = rng * _MUL + _ADD
        b = int(((rng >> _S32) * nb) >> _S32)
        bucket[i] = b
        start[b + 1] += 1
    for b in range(n_buckets):
        start[b + 1] += start[b]
    pos = start[:-1].copy()
    for i in range(n):
        p = pos[bucket[i]]
        pos[bucket[i]] += 1
        for k in range(width):
            dst[p, k] = src[i, k]
    for b in range(n_buckets):
        lo = start[b]
        for i in range(start[b + 1] - 1, lo, -1):
            rng = rng * _MUL + _ADD
            j = lo + int(((rng >> _S32) * np.uint64(i - lo + 1)) >> _S32)
            for k in range(width):
                t = dst[i, k]
                dst[i, k] = dst[j, k]
                dst[j, k] = t


def train_glove(corpus: EncodedCorpus, cfg: GloveConfig) -> TrainResult:
    """Count co-occurrences, then fit GloVe; returns word + context vectors."""
    for name in ("vector_size", "window", "epochs", "min_count"):
        if getattr(cfg, name) < 1:
            raise LmlabError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    t0 = time.perf_counter()
    vocab, remap = Vocab.build(corpus.words, corpus.counts, cfg.min_count, cfg.max_vocab)
    x = cooccurrence(corpus.ids(), remap, len(vocab), cfg.window, cfg.symmetric,
                     progress=cfg.progress)  # fmt: skip
    if x.nnz == 0:
        raise LmlabError("no co-occurrences: the corpus is too small for GloVe; add text")
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(x.nnz)  # shuffled once, as Stanford's shuffle step
    pairs = np.empty((x.nnz, 4), dtype=np.int32)
    pairs_f = pairs.view(np.float32)
    pairs[:, 0] = x.row[order]
    pairs[:, 1] = x.col[order]
    vals = x.data[order].astype(np.float64)
    pairs_f[:, 2] = np.log(vals)
    pairs_f[:, 3] = np.minimum(1.0, (vals / cfg.x_max) ** cfg.alpha)
    del vals, order, x
    count_seconds = time.perf_counter() - t0

    v, d = len(vocab), cfg.vector_size
    init = (rng.random((2 * v, d + 1), dtype=np.float32) - 0.5) / d
    w, c = np.ascontiguousarray(init[:v, :d]), np.ascontiguousarray(init[v:, :d])
    bw, bc = init[:v, d].copy(), init[v:, d].copy()
    gw, gc = np.ones_like(w), np.ones_like(c)
    gbw, gbc = np.ones(v, np.float32), np.ones(v, np.float32)
    eta, clip = np.float32(cfg.eta), np.float32(cfg.grad_clip)
    n = len(pairs)
    bounds = list(range(0, n, cfg.chunk_pairs)) + [n]
    costs = np.zeros(cfg.epochs)
    lock = threading.Lock()
    data = [pairs, pairs_f]
    spare = None  # second buffer for reshuffling

    def run(job: tuple[int, int]) -> int:
        e, k = job
        lo, hi = bounds[k], bounds[k + 1]
        cost = glove_step(data[0][lo:hi], data[1][lo:hi], w, c, bw, bc, gw, gc, gbw, gbc, eta, clip)
        with lock:  # not `costs[e] += glove_step(...)`: that reads costs[e] before the call
            costs[e] += cost
        return hi - lo

    glove_step(pairs[:0], pairs_f[:0], w, c, bw, bc, gw, gc, gbw, gbc, eta, clip)  # compile
    start = time.perf_counter()
    workers = resolve_workers(cfg.workers)
    with progress_bar(total=n * cfg.epochs, unit="pair", unit_scale=True, desc="glove",
              disable=not cfg.progress) as bar:  # fmt: skip
        for e in range(cfg.epochs):
            if e > 0 and cfg.reshuffle:
                spare = np.empty_like(pairs) if spare is None else spare
                shuffle_records(data[0], spare, int(rng.integers(2**31)))
                spare, data = data[0], [spare, spare.view(np.float32)]
            jobs = [(e, k) for k in range(len(bounds) - 1)]
            run_jobs(jobs, run, workers, bar, lambda job: {"epoch": str(job[0] + 1)})
    seconds = time.perf_counter() - start
    return TrainResult(
        Vectors(vocab.words, w + c, vocab.counts),
        (costs / n).tolist(),
        seconds,
        corpus.n_tokens * cfg.epochs / max(seconds, 1e-9),
        {"vocab_size": v, "nonzeros": n, "count_seconds": count_seconds, "workers": workers},
    )
