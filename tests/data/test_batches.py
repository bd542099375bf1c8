"""Training batches: random windows and truncated-BPTT streams."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.data.batches import sample_batch, stream_batch
from lmlab.errors import LmlabError


def test_stream_batches_continue_each_row_where_the_last_batch_ended() -> None:
    tokens = np.arange(1000, dtype=np.uint16)
    x0, y0, fresh0 = stream_batch(tokens, 4, 10, 0)
    x1, y1, fresh1 = stream_batch(tokens, 4, 10, 1)
    assert fresh0 and not fresh1
    assert x0.shape == (4, 10)
    # Row r of batch 1 starts right after row r of batch 0: one contiguous stream per row.
    assert (x1[:, 0] == x0[:, -1] + 1).all()
    assert (y0 == x0 + 1).all()
    # Streams do not overlap and together cover the split.
    assert len(set(x0[:, 0].tolist())) == 4
    per_stream = 999 // 4
    n_windows = per_stream // 10
    _, _, wrapped = stream_batch(tokens, 4, 10, n_windows)
    assert wrapped
    last, _, _ = stream_batch(tokens, 4, 10, n_windows - 1)
    assert last.max() < 1000


def test_stream_batch_refuses_a_split_too_small() -> None:
    with pytest.raises(LmlabError, match="too few"):
        stream_batch(np.arange(30, dtype=np.uint16), 8, 10, 0)


def test_random_windows_are_next_token_pairs() -> None:
    tokens = np.arange(500, dtype=np.uint16)
    x, y = sample_batch(tokens, 16, 20, np.random.default_rng(0))
    assert (y == x + 1).all() and x.shape == (16, 20)
