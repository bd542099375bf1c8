"""The distillation loss: temperature-scaled KL to the teacher's top-k, plus hard-label CE.

``loss = alpha * T^2 * KL(p_T || q_T) + (1 - alpha) * CE(q_1, next token)``

The teacher's distribution ``p_T`` is kept as its ``k`` most likely tokens **plus one
remainder bucket** holding the rest of its probability mass (not renormalised over the
top-k). The student's distribution ``q_T`` is folded the same way: its probabilities of the
teacher's ``k`` tokens, and one bucket with everything else. The KL between these two
``k + 1``-outcome distributions is an exact KL of a coarser view of both models (never more
than the full KL), so it is zero only when the student matches the teacher on the top-k *and*
on how much mass lies outside it. Renormalising the top-k instead would tell the student that
the teacher puts all its mass on ``k`` tokens, and teach it to be over-confident.

The factor ``T^2`` keeps the KL's gradients on the same scale as the cross-entropy's when the
temperature changes (Hinton et al. 2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The remainder bucket's log-probability never goes below this (a top-k that holds all the
# mass, e.g. k = vocabulary): exp(-50) is 2e-22, and log(0) would make 0 * inf = NaN.
REST_FLOOR = -50.0


@dataclass
class LossParts:
    """The loss to minimise and its two terms (detached floats for the metrics)."""

    loss: torch.Tensor
    kl: float | None  # KL(p_T || q_T) per token, without the T^2 factor (None when alpha = 0)
    ce: float  # cross-entropy per token at temperature 1


def topk_targets(
    logits: torch.Tensor, k: int, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's soft targets from its ``logits (..., V)``: log-probabilities at
    ``temperature`` of its ``k`` most likely tokens and of the remainder bucket
    ``(..., k + 1)`` (the last column), and those tokens' ids ``(..., k)``."""
    z = logits.float() / temperature
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    top, idx = z.topk(k, dim=-1)
    rest = torch.logsumexp(z.scatter(-1, idx, float("-inf")), dim=-1, keepdim=True)
    logp = torch.cat([top - lse, (rest - lse).clamp(min=REST_FLOOR)], dim=-1)
    return logp, idx


def folded_log_probs(logits: torch.Tensor, idx: torch.Tensor, temperature: float) -> torch.Tensor:
    """The student's log-probabilities at ``temperature`` of the tokens ``idx (..., k)`` and
    of everything else (the last column), ``(..., k + 1)``; differentiable."""
    z = logits.float() / temperature
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    top = z.gather(-1, idx)
    rest = torch.logsumexp(z.scatter(-1, idx, float("-inf")), dim=-1, keepdim=True)
    return torch.cat([top, rest.clamp(min=-1e4)], dim=-1) - lse


def bucket_kl(teacher_logp: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """Mean over positions of ``sum_i p_i (log p_i - log q_i)`` over the ``k + 1`` buckets."""
    tp = teacher_logp.float()
    return (tp.exp() * (tp - student_logp)).sum(-1).mean()


def distill_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_idx: torch.Tensor | None,
    teacher_logp: torch.Tensor | None,
    alpha: float,
    temperature: float = 1.0,
) -> LossParts:
    """The mixed loss over every position of ``logits (B, T, V)``; ``targets (B, T)`` are the
    next tokens, ``teacher_idx (B, T, k)`` and ``teacher_logp (B, T, k + 1)`` the teacher's
    top-k targets (from :func:`topk_targets`; unused, and may be None, when ``alpha`` is 0,
    which makes this plain cross-entropy)."""
    flat = logits.float().reshape(-1, logits.size(-1))
    ce = F.cross_entropy(flat, targets.reshape(-1))
    if alpha == 0.0:
        return LossParts(ce, None, float(ce.detach()))
    if teacher_idx is None or teacher_logp is None:
        raise ValueError("alpha > 0 needs the teacher's targets")
    k = teacher_idx.size(-1)
    q = folded_log_probs(flat, teacher_idx.reshape(-1, k), temperature)
    kl = bucket_kl(teacher_logp.reshape(-1, k + 1), q)
    loss = alpha * temperature**2 * kl
    if alpha < 1.0:
        loss = loss + (1.0 - alpha) * ce
    return LossParts(loss, float(kl.detach()), float(ce.detach()))
