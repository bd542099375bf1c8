"""The in-context-learning score: how much a model gains from more of its context.

Olsson et al. (2022) define it as the loss on the 500th token of a context minus the loss
on the 50th, averaged over many texts: a model that uses far-back context predicts late
tokens better, so a more negative score means more in-context learning. Their contexts
were 8,192 tokens long; here the two positions keep the same ratio (10:1) within the
context the model has, ``late`` at the end and ``early`` at a tenth of it, and each is
averaged over a small band of neighbouring positions to tame the noise of short
evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lmlab.errors import LmlabError


@dataclass
class ICLScore:
    score: float  # loss(late) - loss(early), nats; negative = the model uses its context
    early: int  # position (0-based token index in the window) of the early loss
    late: int
    loss_early: float
    loss_late: float
    band: int  # positions averaged on each side

    def as_dict(self) -> dict:
        return {
            "icl_score": self.score,
            "early_position": self.early,
            "late_position": self.late,
            "loss_early": self.loss_early,
            "loss_late": self.loss_late,
            "band": self.band,
        }


def icl_score(
    position_loss, early: int | None = None, late: int | None = None, band: int | None = None
) -> ICLScore:
    """ICL score from a mean loss per position ``L[t]`` (the loss of predicting token ``t``).

    Defaults: ``late`` = the last position, ``early`` = ``round(late / 10)`` (Olsson's
    500 vs 50), ``band`` = ``len(L) // 32``; each loss is the mean of ``L`` over
    ``[p - band, p + band]`` clipped to the curve.
    """
    loss = np.asarray(position_loss, dtype=np.float64)
    T = len(loss)
    if T < 2:
        raise LmlabError("the in-context-learning score needs at least 2 positions")
    late = T - 1 if late is None else late
    early = max(1, round(late / 10)) if early is None else early
    if not 0 <= early < late < T:
        raise LmlabError(f"need 0 <= early ({early}) < late ({late}) < {T} positions")
    band = T // 32 if band is None else band
    band = min(band, (late - early) // 2)  # the two bands never overlap

    def around(p: int) -> float:
        return float(loss[max(0, p - band) : min(T, p + band + 1)].mean())

    le, ll = around(early), around(late)
    return ICLScore(ll - le, early, late, le, ll, band)


@torch.no_grad()
def position_losses(
    model, windows: np.ndarray | torch.Tensor, batch_size: int = 8, progress: bool = False
) -> np.ndarray:
    """Mean cross-entropy per position over ``windows`` ``(N, T+1)``: ``L[t]`` is the loss
    of predicting token ``t+1`` from tokens ``0..t``. Works for every model family."""
    w = torch.as_tensor(np.asarray(windows), dtype=torch.long)
    if w.ndim != 2 or w.shape[1] < 3:
        raise LmlabError("windows must be (N, T+1) token ids with T >= 2")
    device = next(iter(model.parameters()), torch.empty(0)).device
    total = torch.zeros(w.shape[1] - 1, dtype=torch.float64)
    model.eval()
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab:  # a large vocabulary: fewer rows at once, so the logits stay near 256 MB
        batch_size = max(1, min(batch_size, (1 << 26) // (w.shape[1] * vocab)))
    for i in tqdm(range(0, len(w), batch_size), desc="loss by position", disable=not progress):
        b = w[i : i + batch_size].to(device)
        logits = model(b[:, :-1]).float()
        ce = F.cross_entropy(logits.transpose(1, 2), b[:, 1:], reduction="none")  # (B, T)
        total += ce.sum(0).double().cpu()
    return (total / len(w)).numpy()


def sample_windows(
    ids: np.ndarray, n: int, length: int, seed: int = 0, starts: np.ndarray | None = None
) -> np.ndarray:
    """``n`` windows of ``length`` tokens from a token stream, evenly spread (or random
    with ``seed`` when the stream holds many more than ``n`` of them)."""
    ids = np.asarray(ids)
    if len(ids) < length:
        raise LmlabError(
            f"the text has {len(ids):,} tokens, fewer than one window of {length}; "
            "give a longer text (--corpus) or a shorter --context"
        )
    last = len(ids) - length
    if starts is None:
        if (last + 1) // length >= 2 * n:
            rng = np.random.default_rng(seed)
            starts = np.sort(rng.choice((last + 1) // length, size=n, replace=False)) * length
        else:
            starts = np.linspace(0, last, num=min(n, last + 1)).astype(np.int64)
    return np.stack([ids[s : s + length] for s in starts]).astype(np.int64)
