"""Texts to padded batches: encode once, cap the length, group texts of similar length.

Training batches are drawn in shuffled chunks of 50 batches whose texts are sorted by length
before being cut into batches (the batches are then shuffled again): little padding, so the
recurrent models run several times faster, while every epoch still sees a new order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lmlab.tokenize import Tokenizer


def _encode(tokenizer: Tokenizer, texts: list[str]) -> list[np.ndarray]:
    if hasattr(tokenizer, "encode_batch"):  # BPE: encoded in parallel by ``tokenizers``
        return [np.asarray(x, dtype=np.int64) for x in tokenizer.encode_batch(texts)]
    return [tokenizer.encode_array(t) for t in texts]


def encode_texts(
    tokenizer: Tokenizer,
    texts: list[str],
    max_len: int,
    template: str | None = None,
    prefix: str = "",
) -> tuple[list[np.ndarray], int]:
    """Token ids of each text, cut to ``max_len``; also how many texts were cut.

    With a prompt ``template`` (holding ``{text}``) the text is cut to ``max_len`` tokens
    first, then written into the template, encoded, and ``prefix``'s tokens put before it:
    the instruction and the answer cue always survive the cut."""
    ids = _encode(tokenizer, texts)
    cut = sum(len(x) > max_len for x in ids)
    if template is None and not prefix:
        return [x[:max_len] for x in ids], cut
    kept = [
        t if len(x) <= max_len else tokenizer.decode(x[:max_len].tolist())
        for t, x in zip(texts, ids, strict=True)
    ]
    full = _encode(tokenizer, [(template or "{text}").replace("{text}", t) for t in kept])
    if prefix:
        head = np.asarray(tokenizer.encode(prefix), dtype=np.int64)
        full = [np.concatenate([head, x]) for x in full]
    return full, cut


def pad(seqs: list[np.ndarray], pad_id: int, min_len: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)``, both ``(B, T)``; T is the longest sequence (at least ``min_len``).
    An empty sequence keeps one padding position and an all-False mask row."""
    t = max(min_len, max((len(s) for s in seqs), default=1))
    ids = np.full((len(seqs), t), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), t), dtype=bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = True
    return torch.from_numpy(ids), torch.from_numpy(mask)


def train_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch of index batches, length-bucketed and shuffled."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Index batches in length order (the caller puts results back by index)."""
    order = np.argsort(lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size]
