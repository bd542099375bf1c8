"""Batches of token windows from flat token arrays (memmaps), for training and evaluation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lmlab.errors import LmlabError


def sample_batch(
    tokens: np.ndarray, batch_size: int, block: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows: inputs ``(B, block)`` and next-token targets."""
    n = len(tokens) - block - 1
    if n < 1:
        raise LmlabError(
            f"the training split has {len(tokens)} tokens, fewer than the context {block} + 1; "
            "use a smaller --context or more text"
        )
    starts = rng.integers(0, n + 1, size=batch_size)
    idx = starts[:, None] + np.arange(block + 1)[None, :]
    win = torch.from_numpy(tokens[idx].astype(np.int64))
    return win[:, :-1], win[:, 1:]


def stream_batch(
    tokens: np.ndarray, batch_size: int, block: int, index: int
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Batch ``index`` of truncated back-propagation through time.

    The split is cut into ``batch_size`` contiguous streams, and row ``r`` of successive
    batches walks along stream ``r`` one ``block`` at a time, so a recurrent model can carry
    its state from one batch to the next (as in Zaremba et al. 2014). Returns inputs,
    targets and whether this batch starts a new pass (the carried state must be reset).
    """
    per_stream = (len(tokens) - 1) // batch_size
    n_windows = per_stream // block
    if n_windows < 1:
        raise LmlabError(
            f"the training split has {len(tokens)} tokens, too few for {batch_size} streams "
            f"of {block} tokens; use a smaller --batch-size or --context"
        )
    w = index % n_windows
    starts = np.arange(batch_size) * per_stream + w * block
    idx = starts[:, None] + np.arange(block + 1)[None, :]
    win = torch.from_numpy(tokens[idx].astype(np.int64))
    return win[:, :-1], win[:, 1:], w == 0


def eval_windows(
    tokens: np.ndarray, block: int, batch_size: int, max_batches: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Deterministic non-overlapping windows covering the split (evenly thinned to
    ``max_batches`` batches if set), so every evaluation sees the same tokens."""
    block = min(block, len(tokens) - 1)
    if block < 1:
        raise LmlabError(
            "the validation split is too small to evaluate; add text or raise --val-fraction"
        )
    n_windows = (len(tokens) - 1) // block
    starts = np.arange(n_windows) * block
    if max_batches is not None and n_windows > max_batches * batch_size:
        pick = np.linspace(0, n_windows - 1, max_batches * batch_size).round().astype(np.int64)
        starts = starts[pick]
    for i in range(0, len(starts), batch_size):
        s = starts[i : i + batch_size]
        idx = s[:, None] + np.arange(block + 1)[None, :]
        win = torch.from_numpy(tokens[idx].astype(np.int64))
        yield win[:, :-1], win[:, 1:]
