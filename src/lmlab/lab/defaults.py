"""A sweep's default sizes and seeds, apart from the sweep itself so that ``lmlab --help``
can show them without importing PyTorch."""

from __future__ import annotations

DEFAULT_SIZES = ("16x1", "32x1", "64x2", "128x2")
# Three seeds per size: one run per size is one draw (a small model escapes a plateau with
# one seed and not another), and the report's spread and seed agreement need several.
# Each seed is a full run, so this triples the time of a one-seed sweep.
DEFAULT_SEEDS = (0, 1, 2)
