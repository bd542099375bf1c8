"""Extractive baselines: lead-k and TextRank (Mihalcea & Tarau 2004).

Sentences: a dialogue's turns (one per line), else sentences ended by ``. ! ?`` (English)
or ``。！？；`` (Chinese), over the text's own line breaks. TextRank builds a graph whose
edge weights are the cosine similarities of the sentences' vectors — TF-IDF over words
(English) or characters (Chinese) by default, or the mean of lmlab word vectors
(:class:`lmlab.embeddings.vectors.Vectors`) when given — ranks the sentences by PageRank
(damping 0.85) and returns the top ``k`` in the text's order.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

_EN_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")
_ZH_END = re.compile(r"(?<=[。！？；!?])")
_WORD = re.compile(r"[A-Za-z0-9']+")


def sentences(text: str, lang: str) -> list[str]:
    """The text's sentences (lines first, then sentence ends), empty ones dropped."""
    out = []
    for line in text.splitlines():
        parts = _ZH_END.split(line) if lang == "zh" else _EN_END.split(line)
        out += [p.strip() for p in parts if p.strip()]
    return out


def lead(text: str, lang: str, k: int = 1) -> str:
    """The first ``k`` sentences."""
    joiner = "" if lang == "zh" else " "
    return joiner.join(sentences(text, lang)[:k])


def _tokens(sentence: str, lang: str) -> list[str]:
    if lang == "zh":
        return [c for c in sentence if not c.isspace()]
    return [w.lower() for w in _WORD.findall(sentence)]


def _tfidf(sents: list[str], lang: str) -> np.ndarray:
    toks = [Counter(_tokens(s, lang)) for s in sents]
    vocab = {w: i for i, w in enumerate(sorted({w for t in toks for w in t}))}
    m = np.zeros((len(sents), max(1, len(vocab))))
    for r, t in enumerate(toks):
        for w, c in t.items():
            m[r, vocab[w]] = c
    df = (m > 0).sum(0)
    return m * (np.log((1 + len(sents)) / (1 + df)) + 1)


def _mean_vectors(sents: list[str], lang: str, vectors) -> np.ndarray:
    out = np.zeros((len(sents), vectors.vector_size))
    for r, s in enumerate(sents):
        found = [vectors[w] for w in _tokens(s, lang) if w in vectors]
        if found:
            out[r] = np.mean(found, axis=0)
    return out


def pagerank(weights: np.ndarray, damping: float = 0.85, iters: int = 100) -> np.ndarray:
    """PageRank scores of a weighted undirected graph (no self loops)."""
    n = len(weights)
    w = weights.copy()
    np.fill_diagonal(w, 0.0)
    out = w.sum(1, keepdims=True)
    trans = np.where(out > 0, w / np.where(out > 0, out, 1), 1.0 / n)
    score = np.full(n, 1.0 / n)
    for _ in range(iters):
        new = (1 - damping) / n + damping * trans.T @ score
        if np.abs(new - score).sum() < 1e-9:
            return new
        score = new
    return score


def textrank(text: str, lang: str, k: int = 1, vectors=None) -> str:
    """The ``k`` most central sentences, in the text's order."""
    sents = sentences(text, lang)
    if len(sents) <= k:
        return ("" if lang == "zh" else " ").join(sents)
    m = _mean_vectors(sents, lang, vectors) if vectors is not None else _tfidf(sents, lang)
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    unit = m / np.where(norm > 0, norm, 1)
    sim = np.clip(unit @ unit.T, 0, None)
    rank = pagerank(sim)
    keep = sorted(np.argsort(-rank, kind="stable")[:k])
    return ("" if lang == "zh" else " ").join(sents[i] for i in keep)
