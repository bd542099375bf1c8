"""The decoding kernel's kinds of weight arrays, and empty ones of each kind (numpy only, so
that the kernel can be loaded without importing PyTorch)."""

from __future__ import annotations

import numpy as np

# Dense matrices: float32, or bfloat16 as its bits (numpy has no bfloat16).
DENSE = {"float32": np.float32, "bfloat16": np.uint16}


def dummy_matrix(kind: str, layers: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty ``(w, d, m)`` of a matrix kind (stacked over ``layers`` unless None)."""
    lead = () if layers is None else (layers,)
    if kind in DENSE:
        w = np.zeros((*lead, 1, 1, 1), DENSE[kind])
    elif kind == "I8":  # per-channel int8: (n_tiles, in, T), scales (n_tiles, T)
        dm = np.zeros((*lead, 1, 1), np.uint16)
        return np.zeros((*lead, 1, 1, 1), np.int8), dm, dm
    else:
        w = np.zeros(
            (*lead, 1, 1, 16 if kind == "Q4" else 32, 1), np.uint8 if kind == "Q4" else np.int8
        )
    dm = np.zeros((*lead, 1, 1, 1), np.uint16)
    return w, dm, dm
