"""Seeded, stratified splits, and the label checks every split must pass.

``stratified_split(labels, [0.8, 0.1, 0.1], seed)`` shuffles each class with one seeded
generator (classes in sorted order) and cuts it at the rounded cumulative fractions, so each
part keeps the class proportions to within one example per class, and the same seed always
gives the same split. Indices come back sorted (the parts keep the file's order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lmlab.errors import LmlabError

if TYPE_CHECKING:  # numpy is imported where a split is made, not when the CLI is built
    import numpy as np


def stratified_split(
    labels: Sequence[str], fractions: Sequence[float], seed: int
) -> list[np.ndarray]:
    """Indices of each part; ``fractions`` must sum to 1."""
    if abs(sum(fractions) - 1.0) > 1e-9 or any(f < 0 for f in fractions):
        raise LmlabError(f"split fractions {list(fractions)} must be >= 0 and sum to 1")
    import numpy as np

    arr = np.asarray(labels, dtype=object)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum([0.0, *fractions])
    for lab in sorted(set(arr.tolist())):
        idx = rng.permutation(np.flatnonzero(arr == lab))
        cuts = np.round(bounds * len(idx)).astype(int)
        for k in range(len(fractions)):
            parts[k].append(idx[cuts[k] : cuts[k + 1]])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, int) for p in parts]


def check_labels(train: Sequence[str], others: dict[str, Sequence[str]], names=None) -> None:
    """One-line errors for a training set with a single class, or for labels that appear in
    validation/test (``others``: split name -> labels) but never in training."""
    seen = set(train)
    if len(seen) < 2:
        only = next(iter(seen), None)
        raise LmlabError(
            f"the training data has a single class ({only!r}); a classifier needs at least two"
        )
    for split, labels in others.items():
        missing: dict[str, int] = {}
        for lab in labels:
            if lab not in seen:
                missing[lab] = missing.get(lab, 0) + 1
        if missing:
            first = sorted(missing, key=lambda k: -missing[k])[:3]
            desc = ", ".join(f"{k!r} ({missing[k]} rows)" for k in first)
            raise LmlabError(
                f"{split} has label(s) never seen in training: {desc}; add training examples "
                "of them or remove those rows"
            )
    if names is not None:
        unknown = sorted(seen - set(names))
        if unknown:
            raise LmlabError(f"training labels {unknown[:3]} are not among {list(names)}")
