"""Task metrics, discontinuous and continuous side by side, computed on whole tensors.

For each test problem the model writes its answer greedily, and is also scored on the
correct answer with teacher forcing:

=================  ==========================================================  ==========
name               what                                                        kind
=================  ==========================================================  ==========
exact_match        the greedy answer (up to ``<eos>``) equals the correct one    discrete
token_accuracy     share of answer tokens (and ``<eos>``) ranked first given     continuous
                   the correct tokens before them
edit_distance      Levenshtein distance, in tokens, between greedy and correct   continuous
answer_loglik      log-probability of the whole correct answer (nats)            continuous
loss               mean cross-entropy per answer token (nats; the test loss)     continuous
choice_accuracy    the most probable choice is the right one (multiple choice)   discrete
brier              sum over choices of (p - correct)^2, choices renormalised     continuous
=================  ==========================================================  ==========

Greedy exact match equals "every teacher-forced token ranked first", so the two views
agree by construction (a test checks it). Schaeffer et al. (2023) argue that emergence
seen in the discrete metrics can be a mirage of the metric; the continuous ones test it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmlab.lab.tasks.base import Encoded, Vocab, _span_mask


@dataclass(frozen=True)
class MetricInfo:
    label: str
    discrete: bool
    higher_is_better: bool


METRICS: dict[str, MetricInfo] = {
    "exact_match": MetricInfo("exact match", True, True),
    "token_accuracy": MetricInfo("per-token accuracy", False, True),
    "edit_distance": MetricInfo("token edit distance", False, False),
    "answer_loglik": MetricInfo("log-likelihood of the answer (nats)", False, True),
    "loss": MetricInfo("answer loss (nats/token)", False, False),
    "choice_accuracy": MetricInfo("multiple-choice accuracy", True, True),
    "brier": MetricInfo("Brier score", False, False),
}


def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each target ``(N, T)`` and whether it was the top-ranked token."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1), logits.argmax(-1) == targets


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean of ``values`` over ``mask`` ``(N, T) -> (N,)``."""
    m = mask.to(values.dtype)
    return (values * m).sum(-1) / m.sum(-1).clamp_min(1)


def token_accuracy(correct: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of masked positions where the model's top token was right, per row."""
    return masked_mean(correct.float(), mask)


def answer_loglik(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the masked token log-probabilities per row: log p(answer | prompt)."""
    return (logp * mask.to(logp.dtype)).sum(-1)


def exact_match(
    pred: torch.Tensor, pred_len: torch.Tensor, target: torch.Tensor, target_len: torch.Tensor
) -> torch.Tensor:
    """1.0 where the first ``pred_len`` tokens of ``pred`` are the first ``target_len`` of
    ``target`` and the lengths agree, else 0.0 (rows of padded ``(N, L)`` tensors)."""
    width = max(pred.shape[1], target.shape[1])
    p = F.pad(pred, (0, width - pred.shape[1]), value=-1)
    t = F.pad(target, (0, width - target.shape[1]), value=-1)
    pos = torch.arange(width)
    same = (p == t) | (pos >= target_len.unsqueeze(-1))
    return (same.all(-1) & (pred_len == target_len)).float()


def edit_distance(
    a: torch.Tensor, a_len: torch.Tensor, b: torch.Tensor, b_len: torch.Tensor
) -> torch.Tensor:
    """Levenshtein distance between the rows of two padded token tensors, all rows at once.

    One dynamic-programming row per token of ``a``, vectorised over the batch and over
    ``b``: substitutions and deletions come from the previous row, and insertions along
    the row are a running minimum, ``D[j] = j + min_{k<=j}(A[k] - k)``.
    """
    n, lb = b.shape
    ar = torch.arange(lb + 1, dtype=torch.float32)
    prev = ar.expand(n, lb + 1).clone()  # distance from the empty prefix of a
    out = torch.where(a_len == 0, b_len.float(), torch.zeros(n))
    for i in range(1, a.shape[1] + 1):
        cost = (a[:, i - 1 : i] != b).float()  # (N, Lb)
        step = torch.minimum(prev[:, :-1] + cost, prev[:, 1:] + 1)
        first = torch.full((n, 1), float(i))
        cand = torch.cat([first, step], dim=1)
        row = ar + torch.cummin(cand - ar, dim=1).values
        done = a_len == i
        out = torch.where(done, row.gather(1, b_len.unsqueeze(1)).squeeze(1), out)
        prev = row
    return out


def choice_probs(choice_loglik: torch.Tensor) -> torch.Tensor:
    """Probabilities of ``K`` choices ``(N, K)``, renormalised over the choices."""
    return torch.softmax(choice_loglik, dim=-1)


def brier_score(probs: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """Multi-class Brier score per row: ``sum_k (p_k - [k == correct])^2`` (0 best, 2 worst)."""
    onehot = F.one_hot(correct, probs.shape[-1]).to(probs.dtype)
    return ((probs - onehot) ** 2).sum(-1)


def answer_tokens(enc: Encoded) -> torch.Tensor:
    """The correct answers without ``<eos>`` as ``(N, A)`` (padded with 0)."""
    width = int(enc.target_len.max()) - 1
    idx = enc.prompt_len.unsqueeze(1) + torch.arange(max(width, 1))
    out = enc.ids.gather(1, idx.clamp_max(enc.seq_len - 1))
    keep = torch.arange(max(width, 1)) < (enc.target_len - 1).unsqueeze(1)
    return torch.where(keep, out, torch.zeros_like(out))[:, :width]


@torch.no_grad()
def greedy_answers(
    model, enc: Encoded, vocab: Vocab | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy answers ``(N, L)`` and their lengths up to the first ``<eos>``.

    Problems are grouped by prompt length, so each group is one batch with no padding.
    """
    eos = Vocab.eos_id if vocab is None else vocab.eos_id
    steps = int(enc.target_len.max())
    limit = model.context_length or 10**9
    pred = torch.zeros(len(enc), steps, dtype=torch.long)
    for plen in enc.prompt_len.unique().tolist():
        rows = (enc.prompt_len == plen).nonzero().squeeze(1)
        x = enc.ids[rows, :plen]
        for t in range(steps):
            nxt = model(x[:, -limit:])[:, -1].argmax(-1)
            pred[rows, t] = nxt
            x = torch.cat([x, nxt.unsqueeze(1)], dim=1)
    is_eos = pred == eos
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full((len(enc),), steps))
    return pred, first


def _teacher_forced(model, ids: torch.Tensor, mask: torch.Tensor):
    logits = model(ids[:, :-1])
    logp, correct = token_logprobs(logits, ids[:, 1:])
    return answer_loglik(logp, mask), token_accuracy(correct, mask), mask.sum(-1), correct, mask


@torch.no_grad()
def evaluate(model, enc: Encoded, batch_size: int = 1024) -> dict[str, float]:
    """Every metric of the module docstring, averaged over the problems of ``enc``."""
    was_training = model.training
    model.eval()
    try:
        parts: dict[str, list[torch.Tensor]] = {}
        for s in range(0, len(enc), batch_size):
            for k, v in _evaluate_batch(
                model, enc.subset(torch.arange(s, min(s + batch_size, len(enc))))
            ).items():
                parts.setdefault(k, []).append(v)
        per = {k: torch.cat(v) for k, v in parts.items()}
    finally:
        model.train(was_training)
    out = {k: float(v.mean()) for k, v in per.items() if k != "n_tokens"}
    out["loss"] = float(-per["answer_loglik"].sum() / per["n_tokens"].sum())
    return out


def _evaluate_batch(model, enc: Encoded) -> dict[str, torch.Tensor]:
    loglik, acc, n_tok, _, _ = _teacher_forced(model, enc.ids, enc.target_mask())
    pred, pred_len = greedy_answers(model, enc)
    target, target_len = answer_tokens(enc), enc.target_len - 1
    res = {
        "exact_match": exact_match(pred, pred_len, target, target_len),
        "token_accuracy": acc,
        "edit_distance": edit_distance(pred, pred_len, target, target_len),
        "answer_loglik": loglik,
        "n_tokens": n_tok.float(),
    }
    if enc.choice_ids is not None:
        n, k, t = enc.choice_ids.shape
        mask = _span_mask(enc.prompt_len.repeat_interleave(k), enc.choice_len.reshape(-1), t)
        ll = _teacher_forced(model, enc.choice_ids.reshape(n * k, t), mask)[0].reshape(n, k)
        probs = choice_probs(ll)
        res["choice_accuracy"] = (probs.argmax(-1) == enc.correct).float()
        res["brier"] = brier_score(probs, enc.correct)
    return res
