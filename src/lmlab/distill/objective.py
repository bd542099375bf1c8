"""Distillation as a training objective for lmlab's trainer (:class:`lmlab.train.loop.Objective`).

Each step draws ``batch_size`` of the fixed training windows (:mod:`lmlab.distill.targets`)
with the trainer's random generator, so a distilled student and its from-scratch twin
(``alpha = 0``) with the same seed see exactly the same batches, and a resumed run continues
the same sequence. The teacher's cached targets of those windows come along as extra tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from lmlab.distill.loss import distill_loss
from lmlab.distill.targets import TeacherTargets, window_starts, windows
from lmlab.errors import LmlabError


class DistillObjective:
    """Window batches plus the mixed KL + cross-entropy loss."""

    def __init__(
        self,
        tokens: np.ndarray,
        context: int,
        alpha: float,
        temperature: float,
        targets: TeacherTargets | None,
    ) -> None:
        if alpha > 0 and targets is None:
            raise LmlabError("distillation with alpha > 0 needs the teacher's targets")
        self.tokens, self.context = tokens, context
        self.alpha, self.temperature, self.targets = alpha, temperature, targets
        self.n_windows = window_starts(len(tokens), context)
        self._kl: list[float] = []
        self._ce: list[float] = []

    def batch(
        self, rng: np.random.Generator, batch_size: int, context: int
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        if context != self.context:
            raise LmlabError(f"the teacher's targets are for context {self.context}, not {context}")
        ids = rng.integers(0, self.n_windows, size=batch_size)
        x, y = windows(self.tokens, ids, context)
        if self.alpha == 0.0:
            return x, y, ()
        assert self.targets is not None
        return x, y, self.targets.get(ids)

    def loss(
        self, logits: torch.Tensor, targets: torch.Tensor, extra: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        idx, logp = extra if extra else (None, None)
        parts = distill_loss(logits, targets, idx, logp, self.alpha, self.temperature)
        if parts.kl is not None:
            self._kl.append(parts.kl)
        self._ce.append(parts.ce)
        return parts.loss

    def log_fields(self) -> dict[str, float]:
        """Mean KL to the teacher and hard-label cross-entropy since the last record."""
        out: dict[str, float] = {}
        if self._kl:
            out["kl"] = sum(self._kl) / len(self._kl)
        if self._ce:
            out["ce"] = sum(self._ce) / len(self._ce)
        self._kl.clear()
        self._ce.clear()
        return out
