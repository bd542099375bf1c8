"""Lab metrics against hand-computed values, and the model-level evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from lmlab.lab.metrics import (
    answer_loglik,
    brier_score,
    choice_probs,
    edit_distance,
    evaluate,
    exact_match,
    greedy_answers,
    token_accuracy,
    token_logprobs,
)
from lmlab.lab.tasks import encode, get_task, make_split, seq_len_for
from lmlab.lab.trainer import model_config
from lmlab.models import build_model


def _levenshtein(a: list[int], b: list[int]) -> int:
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


def _pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(r) for r in rows))
    t = torch.full((len(rows), width), 99, dtype=torch.long)
    for i, r in enumerate(rows):
        t[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return t, torch.tensor([len(r) for r in rows])


def test_edit_distance_hand_values() -> None:
    a, al = _pad([[1, 2, 3], [1, 2, 3], [], [5, 6], [1, 2, 3, 4]])
    b, bl = _pad([[1, 2, 3], [1, 3], [7, 7], [], [2, 1, 3, 4, 5]])
    # equal; one deletion; two insertions; two deletions; kitten-like: 2 subs + 1 insert
    assert edit_distance(a, al, b, bl).tolist() == [0, 1, 2, 2, 3]


def test_edit_distance_matches_reference_on_random_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    rows_a, rows_b = [], []
    for _ in range(300):
        la, lb = torch.randint(0, 7, (2,), generator=g).tolist()
        rows_a.append(torch.randint(0, 3, (la,), generator=g).tolist())
        rows_b.append(torch.randint(0, 3, (lb,), generator=g).tolist())
    a, al = _pad(rows_a)
    b, bl = _pad(rows_b)
    want = [_levenshtein(x, y) for x, y in zip(rows_a, rows_b, strict=True)]
    assert edit_distance(a, al, b, bl).tolist() == want


def test_exact_match_and_token_accuracy() -> None:
    pred, pl = _pad([[1, 2, 3], [1, 2, 4], [1, 2], [1, 2, 3, 5]])
    tgt, tl = _pad([[1, 2, 3]] * 4)
    assert exact_match(pred, pl, tgt, tl).tolist() == [1, 0, 0, 0]
    correct = torch.tensor([[True, False, True, True], [True, True, False, False]])
    mask = torch.tensor([[False, True, True, True], [True, True, True, False]])
    assert token_accuracy(correct, mask).tolist() == pytest.approx([2 / 3, 2 / 3])


def test_loglik_and_brier_hand_values() -> None:
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]]]))
    logp, top = token_logprobs(logits, torch.tensor([[0, 2]]))
    assert logp.tolist()[0] == pytest.approx([math.log(0.5), math.log(0.3)])
    assert top.tolist() == [[True, False]]
    mask = torch.tensor([[True, True]])
    assert float(answer_loglik(logp, mask)[0]) == pytest.approx(math.log(0.15))
    probs = choice_probs(torch.log(torch.tensor([[0.2, 0.6], [0.3, 0.1]])))
    assert probs.tolist() == [pytest.approx([0.25, 0.75]), pytest.approx([0.75, 0.25])]
    # correct = 1: (0.25-0)^2 + (0.75-1)^2 = 0.125; correct = 1: 0.75^2 + 0.75^2 = 1.125
    assert brier_score(probs, torch.tensor([1, 1])).tolist() == pytest.approx([0.125, 1.125])
    uniform = torch.full((1, 4), 0.25)
    assert float(brier_score(uniform, torch.tensor([2]))[0]) == pytest.approx(0.75)


@pytest.fixture(scope="module")
def tiny_add():
    torch.manual_seed(0)
    task = get_task("add", digits=2)
    split = make_split(task, 50, 200, 0)
    vocab = task.vocab()
    enc = encode(split.test, vocab, seq_len_for(split))
    model = build_model("transformer", model_config("16x1", len(vocab), enc.seq_len))
    return task, vocab, enc, model


def test_greedy_exact_match_equals_teacher_forced_all_correct() -> None:
    # A model trained a little on a small task gets some answers right and some wrong.
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and deterministic
    torch.manual_seed(0)
    task = get_task("add", digits=1)
    split = make_split(task, 80, 20, 0)
    vocab = task.vocab()
    enc = encode(split.train, vocab, seq_len_for(split))
    model = build_model("transformer", model_config("32x1", len(vocab), enc.seq_len))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    mask = enc.target_mask()
    for _ in range(60):
        logits = model(enc.ids[:, :-1])
        logp, _ = token_logprobs(logits, enc.ids[:, 1:])
        loss = -(logp * mask).sum() / mask.sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    _, top = token_logprobs(model(enc.ids[:, :-1]), enc.ids[:, 1:])
    teacher_all = (top | ~mask).all(-1).float()
    res = evaluate(model, enc)
    assert 0.05 < res["exact_match"] < 0.95  # neither trivially all wrong nor all right
    assert res["exact_match"] == pytest.approx(float(teacher_all.mean()))
    pred, plen = greedy_answers(model, enc)
    assert pred.shape == (len(enc), 3) and (plen <= 3).all()


def test_evaluate_reports_every_metric(tiny_add) -> None:
    _, _, enc, model = tiny_add
    res = evaluate(model, enc, batch_size=64)  # several batches give the same means
    whole = evaluate(model, enc)
    assert res == pytest.approx(whole)
    for k in ("exact_match", "token_accuracy", "edit_distance", "answer_loglik", "loss"):
        assert k in res
    # an untrained model over 16 symbols: loss near log(16), log-likelihood = -4 x loss
    assert 2.0 < res["loss"] < 3.5
    assert res["answer_loglik"] == pytest.approx(-4 * res["loss"], rel=1e-4)
    dyck = get_task("dyck")
    split = make_split(dyck, 20, 64, 0)
    v = dyck.vocab()
    enc_mc = encode(split.test, v, seq_len_for(split))
    m = build_model("transformer", model_config("16x1", len(v), enc_mc.seq_len))
    r = evaluate(m, enc_mc)
    assert 0.0 <= r["brier"] <= 2.0 and 0.0 <= r["choice_accuracy"] <= 1.0
    assert r["brier"] == pytest.approx(0.5, abs=0.05)  # near-uniform over two choices
