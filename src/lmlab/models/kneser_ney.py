"""Interpolated modified Kneser-Ney estimation (Chen & Goodman 1998), vectorised with numpy.

The estimate follows KenLM's ``lmplz`` so that the two agree to float precision:

* every sentence is ``<s> w1 ... wk </s>``; ``<s>`` only ever starts an n-gram;
* adjusted counts: raw counts for the highest order and for n-grams that start with
  ``<s>``, otherwise the number of distinct words seen to the left (continuation counts);
* three discounts per order from counts of counts: ``Y = n1 / (n1 + 2 n2)``,
  ``D_j = j - (j + 1) Y n_{j+1} / n_j`` for j = 1, 2, 3+;
* ``p(w|h) = (a(hw) - D(a(hw))) / sum_x a(hx) + gamma(h) p(w|h')`` with
  ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)) / sum_x a(hx)``; unigrams interpolate
  with the uniform distribution over the vocabulary (``<s>`` excluded).

N-grams are numbered order by order: an n-gram of order k is the pair (id of its first k-1
words in the order k-1 table, last word), packed into one sorted int64 key
``prefix * W + word`` with ``W = vocab_size + 1`` (the extra id is ``<s>``). No Python dicts,
no per-token loops: each order is one ``np.unique`` over the corpus positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmlab.errors import LmlabError

MAX_ORDER = 6
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # KenLM's --discount_fallback defaults
LOG10_BOS = -99.0  # ``<s>`` is never predicted; ARPA files write -99 for it


@dataclass
class NGramTables:
    """An estimated model: per order, sorted keys, log10 probabilities and log10 backoffs.

    ``keys[0]`` is ``arange(W)`` (unigrams are indexed by word id). ``bows[k]`` exists for
    orders below the highest; ``discounts`` is ``(order, 3)``.
    """

    vocab_size: int
    keys: list[np.ndarray]
    logp: list[np.ndarray]
    bows: list[np.ndarray]
    discounts: np.ndarray

    @property
    def order(self) -> int:
        return len(self.keys)

    @property
    def bos_id(self) -> int:
        return self.vocab_size


def table_arrays(tables: NGramTables) -> dict[str, np.ndarray]:
    """The tables under the tensor names of ``model.safetensors`` (``logp_1``, ``bow_1``,
    ``key_k``, ``logp_k``, ``bow_k``, ``discounts``), as contiguous numpy arrays."""
    t = {
        "logp_1": tables.logp[0],
        "bow_1": tables.bows[0]
        if tables.bows
        else np.zeros(tables.vocab_size + 1, dtype=np.float32),
    }
    for k in range(2, tables.order + 1):
        t[f"key_{k}"] = tables.keys[k - 1]
        t[f"logp_{k}"] = tables.logp[k - 1]
        if k < tables.order:
            t[f"bow_{k}"] = tables.bows[k - 1]
    t["discounts"] = np.asarray(tables.discounts, dtype=np.float32)
    dtypes = {"key": np.int64}
    return {
        k: np.ascontiguousarray(v, dtype=dtypes.get(k.split("_")[0], np.float32))
        for k, v in t.items()
    }


def with_sentence_starts(tokens: np.ndarray, eos_id: int, bos_id: int) -> np.ndarray:
    """``tokens`` with ``<s>`` put at the start and after every ``</s>`` but a final one."""
    tokens = np.asarray(tokens, dtype=np.int64)
    after = np.flatnonzero(tokens[:-1] == eos_id) + 1
    return np.insert(tokens, np.concatenate(([0], after)), bos_id)


def count_ngrams(
    stream: np.ndarray, order: int, width: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Raw counts of every n-gram of ``stream`` (with ``<s>`` = ``width - 1`` inserted).

    Returns per order k: the sorted keys, raw counts and, for k >= 2, the id of each
    n-gram's suffix (its last k-1 words) in the order k-1 table. An n-gram is skipped if
    ``<s>`` appears anywhere but first.
    """
    bos = width - 1
    n = len(stream)
    positions = np.arange(n, dtype=np.int64)
    bos_at = np.flatnonzero(stream == bos)
    # index of the next <s> strictly after each position (n if none)
    nxt = np.searchsorted(bos_at, positions, side="right")
    next_bos = np.append(bos_at, n)[nxt]
    keys = [np.arange(width, dtype=np.int64)]
    counts = [np.bincount(stream, minlength=width).astype(np.int64)]
    suffixes: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    ids_prev = stream  # id of the (k-1)-gram starting at each position (-1: none)
    for k in range(2, order + 1):
        pos = positions[: max(n - k + 1, 0)]
        pos = pos[next_bos[pos] >= pos + k]
        key = ids_prev[pos] * width + stream[pos + k - 1]
        uniq, first, inverse, cnt = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True
        )
        ids_k = np.full(n, -1, dtype=np.int64)
        ids_k[pos] = inverse.reshape(-1)
        keys.append(uniq)
        counts.append(cnt.astype(np.int64))
        suffixes.append(ids_prev[pos[first] + 1])
        ids_prev = ids_k
    return keys, counts, suffixes


def estimate_discounts(adjusted: np.ndarray) -> np.ndarray:
    """Chen & Goodman's D1, D2, D3+ from counts of counts; KenLM's fallback when undefined."""
    n = np.array([np.count_nonzero(adjusted == j) for j in range(1, 5)], dtype=np.float64)
    if np.any(n == 0):
        return np.array(FALLBACK_DISCOUNTS)
    y = n[0] / (n[0] + 2.0 * n[1])
    d = np.array([j - (j + 1) * y * n[j] / n[j - 1] for j in (1, 2, 3)])
    if np.any(d < 0) or np.any(d > np.array([1.0, 2.0, 3.0])):
        return np.array(FALLBACK_DISCOUNTS)
    return d


def _discount_of(adjusted: np.ndarray, d: np.ndarray) -> np.ndarray:
    table = np.array([0.0, d[0], d[1], d[2]])
    return table[np.minimum(adjusted, 3)]


def estimate(tokens: np.ndarray, order: int, vocab_size: int, eos_id: int) -> NGramTables:
    """Interpolated modified Kneser-Ney model of ``order`` from a token-id stream.

    ``tokens`` are ids in ``[0, vocab_size)``; ``eos_id`` ends a sentence (``</s>``) and
    the next token starts a new one (after ``<s>``).
    """
    if not 1 <= order <= MAX_ORDER:
        raise LmlabError(f"n-gram order must be between 1 and {MAX_ORDER}, got {order}")
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if tokens.size == 0:
        raise LmlabError("the training corpus has no tokens; give a non-empty corpus")
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise LmlabError(
            f"token ids must lie in [0, {vocab_size}); got {tokens.min()}..{tokens.max()}"
        )
    width = vocab_size + 1
    bos = vocab_size
    stream = with_sentence_starts(tokens, eos_id, bos)
    keys, raw, suffixes = count_ngrams(stream, order, width)

    # First word of every n-gram, to find those that start with <s>.
    first = [keys[0]]
    for k in range(1, order):
        first.append(first[k - 1][keys[k] // width])
    adjusted = []
    for k in range(order):
        if k == order - 1:
            a = raw[k].copy()
        else:
            cont = np.bincount(suffixes[k + 1], minlength=len(keys[k])).astype(np.int64)
            a = np.where(first[k] == bos, raw[k], cont)
        if k == 0:
            a[bos] = 0  # <s> is never predicted
        adjusted.append(a)

    discounts = np.stack([estimate_discounts(a) for a in adjusted])
    probs: list[np.ndarray] = []
    gammas: list[np.ndarray] = []
    for k in range(order):
        a = adjusted[k].astype(np.float64)
        disc = _discount_of(adjusted[k], discounts[k])
        if k == 0:
            denom = a.sum()
            gamma0 = disc.sum() / denom
            p = (a - disc) / denom + gamma0 / vocab_size
        else:
            prefix = keys[k] // width
            n_ctx = len(keys[k - 1])
            denom = np.bincount(prefix, weights=a, minlength=n_ctx)
            has = denom > 0
            gamma = np.ones(n_ctx)
            gamma[has] = np.bincount(prefix, weights=disc, minlength=n_ctx)[has] / denom[has]
            gammas.append(gamma)
            p = (a - disc) / denom[prefix] + gamma[prefix] * probs[k - 1][suffixes[k]]
        probs.append(p)

    logp = []
    for k in range(order):
        with np.errstate(divide="ignore"):
            lp = np.log10(probs[k]).astype(np.float32)
        if k == 0:
            lp[bos] = LOG10_BOS
        logp.append(lp)
    bows = [np.log10(g).astype(np.float32) for g in gammas]
    return NGramTables(vocab_size, keys, logp, bows, discounts)
