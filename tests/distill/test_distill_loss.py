"""The distillation loss against hand-computed cases: the bucket KL over the teacher's top-k
plus the remainder, the T^2 factor, the mix with cross-entropy, and alpha = 0 as plain CE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lmlab.distill.loss import (
    distill_loss,
    folded_log_probs,
    reference_distill_loss,
    topk_targets,
)


def softmax(xs: list[float]) -> list[float]:
    z = sum(math.exp(x) for x in xs)
    return [math.exp(x) / z for x in xs]


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_kl_plus_ce_by_hand(temperature):
    # One position, a vocabulary of 4. The teacher keeps tokens 1 and 0 (0.5 and 0.3) and
    # 0.2 in the remainder bucket; the student's logits are (2, 1, 0, -1); the next token is 0.
    student = [2.0, 1.0, 0.0, -1.0]
    t = temperature
    q = softmax([s / t for s in student])
    q_folded = [q[1], q[0], q[2] + q[3]]
    p = [0.5, 0.3, 0.2]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q_folded, strict=True))
    ce = -math.log(softmax(student)[0])  # the hard-label term is at temperature 1
    alpha = 0.7
    expected = alpha * t * t * kl + (1 - alpha) * ce

    logits = torch.tensor([[student]])
    idx = torch.tensor([[[1, 0]]])
    logp = torch.tensor([[[math.log(x) for x in p]]])
    parts = distill_loss(logits, torch.tensor([[0]]), idx, logp, alpha, temperature)
    assert parts.loss.item() == pytest.approx(expected, rel=1e-5)
    assert parts.kl == pytest.approx(kl, rel=1e-5)
    assert parts.ce == pytest.approx(ce, rel=1e-5)


def test_alpha_zero_is_plain_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, requires_grad=True)
    y = torch.randint(0, 11, (3, 5))
    parts = distill_loss(logits, y, None, None, alpha=0.0, temperature=3.0)
    ref = F.cross_entropy(logits.reshape(-1, 11), y.reshape(-1))
    assert parts.kl is None
    assert parts.loss.item() == pytest.approx(ref.item(), rel=1e-6)
    (g,) = torch.autograd.grad(parts.loss, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    assert torch.allclose(g, g_ref, atol=1e-7)


def test_alpha_one_has_no_hard_label_term():
    torch.manual_seed(1)
    teacher, student = torch.randn(2, 4, 9), torch.randn(2, 4, 9)
    logp, idx = topk_targets(teacher, 3)
    y_a, y_b = torch.zeros(2, 4, dtype=torch.long), torch.full((2, 4), 5)
    a = distill_loss(student, y_a, idx, logp, alpha=1.0).loss
    b = distill_loss(student, y_b, idx, logp, alpha=1.0).loss
    assert a.item() == pytest.approx(b.item(), rel=1e-6)  # the next tokens do not matter


def test_full_top_k_is_the_full_kl():
    """With k = the vocabulary the remainder is empty and the bucket KL is the ordinary KL."""
    torch.manual_seed(2)
    teacher, student = torch.randn(6, 13), torch.randn(6, 13)
    for t in (1.0, 2.5):
        logp, idx = topk_targets(teacher, 13, t)
        parts = distill_loss(student[None], torch.zeros(1, 6, dtype=torch.long), idx[None],
                             logp[None], alpha=1.0, temperature=t)  # fmt: skip
        p, log_q = F.softmax(teacher / t, -1), F.log_softmax(student / t, -1)
        full = (p * (p.log() - log_q)).sum(-1).mean()
        assert parts.kl == pytest.approx(full.item(), rel=1e-4)
        assert parts.loss.item() == pytest.approx(t * t * full.item(), rel=1e-4)


def test_top_k_targets_keep_the_remainder_mass():
    torch.manual_seed(3)
    logits = torch.randn(4, 50) * 3
    logp, idx = topk_targets(logits, 8, temperature=1.5)
    p = F.softmax(logits / 1.5, -1)
    assert torch.allclose(logp[..., :8].exp(), p.gather(-1, idx), atol=1e-6)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(4), atol=1e-5)  # not renormalised
    top = p.topk(8, -1)
    assert torch.equal(idx, top.indices)
    assert torch.allclose(logp[..., 8].exp(), 1 - top.values.sum(-1), atol=1e-5)


def test_bucket_kl_is_zero_for_the_teacher_itself_and_never_above_the_full_kl():
    torch.manual_seed(4)
    teacher, student = torch.randn(5, 30), torch.randn(5, 30)
    logp, idx = topk_targets(teacher, 4)
    same = distill_loss(teacher[None], torch.zeros(1, 5, dtype=torch.long), idx[None],
                        logp[None], alpha=1.0)  # fmt: skip
    assert same.kl == pytest.approx(0.0, abs=1e-5)
    other = distill_loss(student[None], torch.zeros(1, 5, dtype=torch.long), idx[None],
                         logp[None], alpha=1.0)  # fmt: skip
    p = F.softmax(teacher, -1)
    full = (p * (p.log() - F.log_softmax(student, -1))).sum(-1).mean().item()
    assert 0.0 < other.kl <= full + 1e-6


def test_folded_student_probabilities_sum_to_one_and_have_gradients():
    logits = torch.randn(7, 20, requires_grad=True)
    idx = torch.randint(0, 20, (7, 1)).expand(7, 1)
    lq = folded_log_probs(logits, torch.cat([idx, (idx + 1) % 20], -1), 2.0)
    assert torch.allclose(lq.exp().sum(-1), torch.ones(7), atol=1e-5)
    lq[:, -1].sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("alpha, temperature, k", [(0.5, 1.0, 5), (0.3, 2.0, 5), (1.0, 1.0, 7),
                                                   (0.8, 0.5, 3), (0.5, 1.0, 17)])  # fmt: skip
def test_fused_loss_and_gradient_match_autograd(alpha, temperature, k):
    """The hand-written gradient against autograd's, on the plainly written loss (k = 17 is
    the whole vocabulary: an empty remainder)."""
    torch.manual_seed(5)
    teacher = torch.randn(2, 6, 17) * 2
    logp, idx = topk_targets(teacher, k, temperature)
    y = torch.randint(0, 17, (2, 6))
    a = (torch.randn(2, 6, 17) * 2).requires_grad_()
    b = a.detach().clone().requires_grad_()
    fused = distill_loss(a, y, idx, logp, alpha, temperature).loss
    ref = reference_distill_loss(b, y, idx, logp, alpha, temperature)
    assert fused.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-7)
    (3.0 * fused).backward()
    (3.0 * ref).backward()
    assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7)


def test_fused_loss_takes_bf16_logits_under_autocast():
    torch.manual_seed(6)
    logp, idx = topk_targets(torch.randn(1, 4, 30), 4)
    x = torch.randn(1, 4, 30).to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = distill_loss(x, torch.zeros(1, 4, dtype=torch.long), idx, logp, 0.5).loss
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.bfloat16
    ref = reference_distill_loss(x.detach().float(), torch.zeros(1, 4, dtype=torch.long), idx,
                                 logp, 0.5)  # fmt: skip
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
