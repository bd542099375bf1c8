"""Word-word co-occurrence counts for GloVe, built with numpy and scipy sparse matrices.

Like Stanford GloVe's ``cooccur``: a symmetric window of ``window`` words on each side, each
pair weighted ``1 / distance``; words outside the vocabulary are removed before windowing and
windows do not cross sentence (document) boundaries. The corpus is read in chunks of
``chunk_tokens`` tokens; each chunk's pairs become a sparse matrix that is added to the running
total, so memory is bounded by one chunk's pairs plus the distinct pairs seen so far.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from lmlab.embeddings.corpus import BREAK
from lmlab.progress import progress_bar


def _chunk_pairs(
    kept: np.ndarray, skip: int, window: int, v: int, distance_weighting: bool
) -> sp.csr_matrix:
    """Counts of (centre, left context) pairs whose centre lies at ``skip`` or later."""
    sentence = np.cumsum(kept == BREAK)
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        if d >= len(kept):
            break
        centre, left = kept[d:], kept[:-d]
        ok = (centre >= 0) & (left >= 0) & (sentence[d:] == sentence[:-d])
        if skip > d:
            ok[: skip - d] = False
        rows.append(centre[ok])
        cols.append(left[ok])
        vals.append(np.full(int(ok.sum()), 1.0 / d if distance_weighting else 1.0))
    if not rows:
        return sp.csr_matrix((v, v), dtype=np.float64)
    coo = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(v, v)
    )
    return coo.tocsr()  # sums duplicate pairs


def cooccurrence(
    ids: np.ndarray,
    remap: np.ndarray,
    vocab_size: int,
    window: int = 10,
    symmetric: bool = True,
    distance_weighting: bool = True,
    chunk_tokens: int = 2_000_000,
    progress: bool = True,
) -> sp.coo_matrix:
    """The co-occurrence matrix X (``vocab_size`` square, float32, COO with row-major order).

    ``ids`` are provisional ids with -1 at sentence breaks; ``remap`` maps them to vocabulary
    ids (-2 = not in the vocabulary). ``symmetric=False`` counts left contexts only.
    """
    total = sp.csr_matrix((vocab_size, vocab_size), dtype=np.float64)  # float64 while summing
    tail = np.zeros(0, dtype=np.int32)
    lut = np.append(remap, np.int32(BREAK))  # index -1 (a break) maps to BREAK
    with progress_bar(
        total=len(ids), unit="w", unit_scale=True, desc="co-occurrences", disable=not progress
    ) as bar:
        for start in range(0, len(ids), chunk_tokens):
            raw = np.asarray(ids[start : start + chunk_tokens])
            mapped = lut[raw]
            mapped = mapped[mapped != -2]
            kept = np.concatenate([tail, mapped])
            total = total + _chunk_pairs(kept, len(tail), window, vocab_size, distance_weighting)
            tail = kept[-window:]
            bar.update(len(raw))
    if symmetric:
        total = total + total.T
    coo = total.tocsr().tocoo()
    coo.data = coo.data.astype(np.float32)
    return coo
