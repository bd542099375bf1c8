"""word2vec: CBOW and skip-gram, with negative sampling and/or hierarchical softmax.

The recipe of Mikolov et al. (2013) as in the original C tool and gensim: frequent-word
subsampling, a dynamic (randomly shrunk) window, a learning rate decaying linearly to
``min_alpha`` over all epochs, negatives drawn from the unigram^0.75 table, a Huffman tree for
hierarchical softmax. Training runs on all cores: Python threads call a numba kernel that
releases the GIL and updates shared weights without locks (Hogwild). With ``workers=1`` and a
fixed ``seed`` the result is bit-for-bit reproducible.

>>> from lmlab.embeddings.corpus import encode_corpus
>>> corpus = encode_corpus([["the", "cat", "sat"]] * 50)
>>> result = train_word2vec(corpus, Word2VecConfig(min_count=1, epochs=1, progress=False))
>>> result.vectors.vector_size
100
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from lmlab.embeddings import _w2v_kernels as K
from lmlab.embeddings._parallel import run_jobs
from lmlab.embeddings.corpus import EncodedCorpus
from lmlab.embeddings.vectors import Vectors
from lmlab.embeddings.vocab import Vocab, huffman_codes, keep_probabilities, negative_table
from lmlab.errors import LmlabError
from lmlab.progress import progress_bar


@dataclass
class Word2VecConfig:
    """Settings; defaults follow gensim (CBOW, 5 negatives, window 5, sample 1e-3)."""

    sg: bool = False  # skip-gram if True, else CBOW
    hs: bool = False  # hierarchical softmax
    negative: int = 5  # negatives per prediction (0: none)
    # negatives without hs: skip-gram draws once per centre word for its whole window (about
    # 2x faster), CBOW once per two consecutive centre words (about 1.3x), quality within
    # noise; False: a fresh draw for every prediction, as word2vec and gensim
    shared_negatives: bool = True
    vector_size: int = 100
    window: int = 5
    min_count: int = 5
    max_vocab: int | None = None
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 0.0001
    epochs: int = 5
    workers: int = 0  # 0: all cores
    seed: int = 1
    ns_exponent: float = 0.75
    max_sentence: int = 10000
    chunk_words: int = 50_000
    progress: bool = True


@dataclass
class TrainResult:
    """Trained vectors plus what happened: loss per epoch, time, throughput."""

    vectors: Vectors
    epoch_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    words_per_sec: float = 0.0  # corpus words (before subsampling) per second, as gensim
    extra: dict = field(default_factory=dict)


def _check(cfg: Word2VecConfig) -> None:
    if cfg.negative <= 0 and not cfg.hs:
        raise LmlabError("nothing to train: set negative > 0 or use hierarchical softmax (hs)")
    for name in ("vector_size", "window", "epochs", "min_count", "max_sentence", "chunk_words"):
        if getattr(cfg, name) < 1:
            raise LmlabError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if not cfg.alpha > 0 or cfg.min_alpha < 0:
        raise LmlabError("alpha must be positive and min_alpha non-negative")


def resolve_workers(workers: int) -> int:
    return workers if workers > 0 else (os.cpu_count() or 1)


def train_word2vec(corpus: EncodedCorpus, cfg: Word2VecConfig) -> TrainResult:
    """Train word2vec on an encoded corpus; returns the input vectors (like gensim's ``wv``)."""
    _check(cfg)
    vocab, remap = Vocab.build(corpus.words, corpus.counts, cfg.min_count, cfg.max_vocab)
    v, d = len(vocab), cfg.vector_size
    rng = np.random.default_rng(cfg.seed)
    # uniform in [-1/d, 1/d) like gensim 4 (word2vec.c uses half that; gensim's scores higher)
    syn0 = ((rng.random((v, d), dtype=np.float32) * 2 - 1) / d).astype(np.float32)
    dummy = np.zeros((1, d), dtype=np.float32)
    syn1neg = np.zeros((v, d), np.float32) if cfg.negative > 0 else dummy
    if cfg.hs:
        if v < 2:
            raise LmlabError("hierarchical softmax needs at least two words; lower --min-count")
        codes, points, lengths = huffman_codes(vocab.counts)
        syn1 = np.zeros((v - 1, d), np.float32)
    else:
        codes, points, lengths = (
            np.zeros((1, 1), np.uint8),
            np.zeros((1, 1), np.int32),
            np.zeros(1, np.int32),
        )
        syn1 = dummy
    table = (
        negative_table(vocab.counts, cfg.ns_exponent) if cfg.negative > 0 else np.zeros(1, np.int32)
    )
    keep = keep_probabilities(vocab.counts, cfg.sample)

    ids = corpus.ids()
    n = len(ids)
    bounds = list(range(0, n, cfg.chunk_words)) + [n]
    jobs = [(e, c) for e in range(cfg.epochs) for c in range(len(bounds) - 1)]
    total = n * cfg.epochs
    workers = min(resolve_workers(cfg.workers), max(1, len(jobs)))
    epoch_loss = np.zeros(cfg.epochs)
    epoch_pred = np.zeros(cfg.epochs)
    lock = threading.Lock()
    bar = progress_bar(total=total, unit="w", unit_scale=True, disable=not cfg.progress,
               desc="skip-gram" if cfg.sg else "cbow", smoothing=0.1)  # fmt: skip

    def alpha_at(pos: int) -> float:
        return cfg.alpha - (cfg.alpha - cfg.min_alpha) * min(1.0, pos / max(1, total))

    def run(args: tuple[int, int], warmup: bool = False) -> int:
        epoch, c = args
        lo, hi = (0, 0) if warmup else (bounds[c], bounds[c + 1])
        seed = (cfg.seed * 1_000_003 + epoch * 100_003 + c) & 0x7FFFFFFFFFFF
        loss, n_pred, _ = K.train_chunk(
            np.asarray(ids[lo:hi]), remap, keep, syn0, syn1, syn1neg, table, codes,
            points, lengths, cfg.sg, cfg.hs, cfg.negative, cfg.window,
            alpha_at(epoch * n + lo), alpha_at(epoch * n + hi), seed,
            cfg.max_sentence, K.SIGMOID_TABLE, K.LOGSIG_TABLE, cfg.shared_negatives,
        )  # fmt: skip
        with lock:
            epoch_loss[epoch] += loss
            epoch_pred[epoch] += n_pred
        return hi - lo

    run((0, 0), warmup=True)  # compile (or load from cache) before the clock starts
    start = time.perf_counter()
    run_jobs(jobs, run, workers, bar,
             lambda job: {"lr": f"{alpha_at(job[0] * n + bounds[job[1] + 1]):.5f}"})  # fmt: skip
    seconds = time.perf_counter() - start
    bar.close()
    losses = (epoch_loss / np.maximum(epoch_pred, 1)).tolist()
    return TrainResult(
        Vectors(vocab.words, syn0, vocab.counts), losses, seconds,
        corpus.n_tokens * cfg.epochs / max(seconds, 1e-9),
        {"vocab_size": v, "corpus_words": corpus.n_tokens, "workers": workers},
    )  # fmt: skip
