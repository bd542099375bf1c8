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
    z = logits.detach().to(torch.float32, copy=True)
    if temperature != 1.0:
        z.div_(temperature)
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    top, idx = z.topk(k, dim=-1)
    q = z.sub_(lse).exp_()  # in place, as the rows are wide (49,152 for SmolLM2)
    rest = q.scatter_(-1, idx, 0.0).sum(-1, keepdim=True)  # the remainder, summed exactly
    logp = torch.cat([top - lse, rest.clamp(min=1e-30).log().clamp(min=REST_FLOOR)], dim=-1)
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


class _FusedDistillLoss(torch.autograd.Function):
    """The mixed loss and its gradient in a few passes over the ``(N, V)`` logits.

    Written out by hand because autograd's version (log-softmax, gather, an out-of-place
    scatter for the remainder, logsumexp) walks the 49,152-wide rows some 30 times and was 4x
    slower than the student's whole step without it. With ``q`` the student's probabilities
    at temperature T, ``K`` the teacher's top-k, ``p`` its bucket probabilities (total ``P``,
    1 up to float16 rounding) and ``r = p_R / q_R``, the KL's gradient in the logits z/T is
    ``P q_j - p_j`` on K and ``(P - r) q_j`` elsewhere.
    """

    @staticmethod
    def forward(ctx, logits, targets, idx, teacher_logp, alpha: float, temperature: float):
        n = logits.shape[0]
        z = logits.to(torch.float32, copy=True)
        if temperature != 1.0:
            z.div_(temperature)
        lse = torch.logsumexp(z, dim=-1, keepdim=True)
        z_top = z.gather(-1, idx)
        if temperature == 1.0:
            ce_rows = lse[:, 0] - z.gather(-1, targets[:, None])[:, 0]
        else:
            s = logits.float()
            ce_rows = torch.logsumexp(s, dim=-1) - s.gather(-1, targets[:, None])[:, 0]
        q = z.sub_(lse).exp_()  # in place: z is not needed again
        lq_top = z_top - lse
        q_top = lq_top.exp()
        q.scatter_(-1, idx, 0.0)  # the remainder's mass, summed exactly (not 1 - sum(top))
        q_rest = q.sum(-1, keepdim=True)
        q.scatter_(-1, idx, q_top)
        lp = teacher_logp.float()
        p = lp.exp()
        lq_rest = q_rest.clamp(min=1e-30).log()
        kl_rows = (p[:, :-1] * (lp[:, :-1] - lq_top)).sum(-1) + p[:, -1] * (
            lp[:, -1] - lq_rest[:, 0]
        )
        kl, ce = kl_rows.mean(), ce_rows.mean()
        loss = alpha * temperature**2 * kl + (1.0 - alpha) * ce
        ctx.save_for_backward(logits, targets, idx, p, q, q_rest)
        ctx.alpha, ctx.temperature, ctx.n = alpha, temperature, n
        ctx.mark_non_differentiable(kl, ce)
        return loss, kl.detach(), ce.detach()

    @staticmethod
    def backward(ctx, grad_loss, _gkl, _gce):
        logits, targets, idx, p, q, q_rest = ctx.saved_tensors
        a, t, n = ctx.alpha, ctx.temperature, ctx.n
        total = p.sum(-1, keepdim=True)  # P
        r = p[:, -1:] / q_rest.clamp(min=1e-30)
        kl_scale = a * t / n  # d(a T^2 mean KL)/d logits = a T / N * dKL/d(z/T)
        same_q = t == 1.0
        ce_scale = (1.0 - a) / n
        q_top = q.gather(-1, idx)
        row = kl_scale * (total - r) + (ce_scale if same_q else 0.0)
        on_top = kl_scale * (total * q_top - p[:, :-1]) + (ce_scale * q_top if same_q else 0.0)
        g = q.mul_(row)  # q is not needed again
        g.scatter_(-1, idx, on_top)
        if a < 1.0:
            if not same_q:
                g.add_(torch.softmax(logits.float(), dim=-1), alpha=ce_scale)
            g.scatter_add_(-1, targets[:, None], torch.full_like(targets[:, None], -ce_scale,
                                                                 dtype=g.dtype))  # fmt: skip
        g.mul_(grad_loss)
        return g.to(logits.dtype), None, None, None, None, None


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
    flat = logits.reshape(-1, logits.size(-1))
    if alpha == 0.0:
        ce = F.cross_entropy(flat.float(), targets.reshape(-1))
        return LossParts(ce, None, float(ce.detach()))
    if teacher_idx is None or teacher_logp is None:
        raise ValueError("alpha > 0 needs the teacher's targets")
    k = teacher_idx.size(-1)
    with torch.autocast(logits.device.type, enabled=False):
        loss, kl, ce = _FusedDistillLoss.apply(
            flat, targets.reshape(-1), teacher_idx.reshape(-1, k),
            teacher_logp.reshape(-1, k + 1), float(alpha), float(temperature),
        )  # fmt: skip
    return LossParts(loss, float(kl.detach()), float(ce.detach()))


def reference_distill_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_idx: torch.Tensor,
    teacher_logp: torch.Tensor,
    alpha: float,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The same loss written plainly with autograd (slow; the tests' reference)."""
    flat = logits.float().reshape(-1, logits.size(-1))
    ce = F.cross_entropy(flat, targets.reshape(-1))
    k = teacher_idx.size(-1)
    q = folded_log_probs(flat, teacher_idx.reshape(-1, k), temperature)
    kl = bucket_kl(teacher_logp.reshape(-1, k + 1), q)
    return alpha * temperature**2 * kl + (1.0 - alpha) * ce
