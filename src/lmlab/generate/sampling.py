"""Turning next-token logits into a choice: temperature, top-k, top-p, min-p, repetition penalty."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lmlab.errors import LmlabError


@dataclass
class SamplingParams:
    max_new_tokens: int = 200
    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the text (CTRL rule)
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    n: int = 1  # independent samples
    ignore_eos: bool = False  # go on past the end-of-document token instead of stopping

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p", "min_p", "repetition_penalty"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):  # NaN passes every comparison below
                raise LmlabError(f"{name} must be a finite number, got {v}")
        if self.max_new_tokens < 0:
            raise LmlabError("max_new_tokens must be >= 0")
        if self.temperature < 0:
            raise LmlabError("temperature must be >= 0 (0 = greedy)")
        if self.top_k is not None and self.top_k < 1:
            raise LmlabError("top_k must be >= 1")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise LmlabError("top_p must be in (0, 1]")
        if self.min_p is not None and not 0 <= self.min_p <= 1:
            raise LmlabError("min_p must be in [0, 1]")
        if self.repetition_penalty <= 0:
            raise LmlabError("repetition_penalty must be > 0")
        if self.n < 1:
            raise LmlabError("n must be >= 1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Divide positive (multiply negative) logits of tokens already in the text by ``penalty``.

    ``seen`` is a ``(B, V)`` boolean mask of the tokens present so far (each token is
    penalised once, however often it occurred, as in CTRL and Hugging Face).
    """
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Temperature, then top-k, top-p and min-p masks (masked entries become -inf)."""
    if params.temperature != 1.0:
        logits = logits / params.temperature
    if params.top_k is not None and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.min_p is not None and params.min_p > 0:
        probs = logits.softmax(-1)
        floor = params.min_p * probs.max(dim=-1, keepdim=True).values
        logits = logits.masked_fill(probs < floor, float("-inf"))
    if params.top_p is not None and params.top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        sorted_probs = sorted_logits.softmax(-1)
        remove = (
            sorted_probs.cumsum(-1) - sorted_probs >= params.top_p
        )  # keep the token that crosses p
        sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, idx, sorted_logits)
    return logits


def choose(
    logits: torch.Tensor,
    params: SamplingParams,
    seen: torch.Tensor | None,
    gen: torch.Generator | None,
) -> torch.Tensor:
    """Next token ids ``(B,)`` from logits ``(B, V)``; ``seen`` is the repetition mask."""
    logits = logits.float()
    if seen is not None:
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.greedy:
        return logits.argmax(-1)
    probs = filter_logits(logits, params).softmax(-1)
    # argmax(p / E) with E ~ Exponential(1) draws from p (the exponential race); several
    # times faster than torch.multinomial for one draw per row.
    race = torch.empty_like(probs).exponential_(1.0, generator=gen)
    return probs.div_(race).argmax(-1)  # in place: one allocation less per token
