"""Synthetic tasks: determinism, leak-free splits, answer formats, encoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.lab.tasks import (
    TASKS,
    encode,
    get_task,
    make_split,
    parse_task_spec,
    seq_len_for,
    task_from_spec,
)
from lmlab.lab.tasks.dyck import balanced


@pytest.mark.parametrize("name", sorted(TASKS))
def test_split_is_deterministic_and_leak_free(name: str) -> None:
    task = get_task(name)
    a = make_split(task, 300, 100, seed=3)
    b = make_split(task, 300, 100, seed=3)
    assert a.train == b.train and a.test == b.test
    assert len(a.train) == 300 and len(a.test) == 100
    train_keys, test_keys = {e.key for e in a.train}, {e.key for e in a.test}
    assert len(train_keys) == 300 and len(test_keys) == 100  # distinct problems
    assert not train_keys & test_keys
    # no test prompt is a training prompt either (the key is the problem's identity)
    assert not {e.prompt for e in a.train} & {e.prompt for e in a.test}
    other = make_split(task, 300, 100, seed=4)
    assert [e.key for e in other.test] != [e.key for e in a.test]


@pytest.mark.parametrize("spec", ["add:digits=4", "mod:p=97", "copy"])
def test_test_set_does_not_depend_on_training_size(spec: str) -> None:
    task = task_from_spec(spec)
    small, big = make_split(task, 100, 50, 0), make_split(task, 400, 50, 0)
    assert small.test == big.test
    assert big.train[:100] == small.train  # more data extends the smaller set


def test_addition_answers() -> None:
    plain = get_task("add", digits=3)
    ex = plain.make(457, 168)
    assert "".join(ex.prompt) == "457+168=" and "".join(ex.answer) == "0625"
    assert "".join(get_task("add", digits=3, reversed=True).make(457, 168).answer) == "5260"
    pad = "".join(get_task("add", digits=3, scratchpad=True).make(457, 168).answer)
    assert pad == "51,21,60|0625"  # 7+8=15, 5+6+1=12, 4+1+1=6
    rng = np.random.default_rng(0)
    for _ in range(200):  # every sampled answer is the right sum, fixed width
        e = plain.sample(rng)
        a, b = "".join(e.prompt)[:-1].split("+")
        assert int("".join(e.answer)) == int(a) + int(b) and len(e.answer) == 4


def test_multiplication_and_modular() -> None:
    assert "".join(get_task("mul", digits=2).make(12, 34).answer) == "0408"
    for op, want in (("+", 1), ("-", 92), ("*", 91), ("/", 64)):  # 95 op 3 mod 97
        t = get_task("mod", p=97, op=op)
        assert t.make(95, 3).answer == (str(want),)
    div = get_task("mod", p=113, op="/")
    assert (int(div.make(7, 5).answer[0]) * 5) % 113 == 7
    assert len(div.all_problems()) == 113 * 112
    assert len(get_task("mod", p=97).vocab()) == 3 + 97 + 2
    assert get_task("mod").chance == pytest.approx(1 / 97)


def test_sequence_tasks() -> None:
    rng = np.random.default_rng(1)
    c = get_task("copy", length=5).sample(rng)
    assert c.prompt[:-1] == c.answer
    r = get_task("reverse", length=5).sample(rng)
    assert r.prompt[:-1] == tuple(reversed(r.answer))
    rec = get_task("recall", pairs=4).sample(rng)
    body, q = "".join(rec.prompt).split("?")
    assert dict(zip(body[::2], body[1::2], strict=True))[q] == rec.answer[0]
    ind = get_task("induction", length=10, shown=3).sample(rng)
    first, second = "".join(ind.prompt).split("|")
    assert first == second + "".join(ind.answer)


def test_multiple_choice_tasks() -> None:
    rng = np.random.default_rng(2)
    dyck = get_task("dyck", max_pairs=5, types=2)
    samples = [dyck.sample(rng) for _ in range(400)]
    assert all((e.answer == ("y",)) == balanced("".join(e.prompt[:-1])) for e in samples)
    share = np.mean([e.answer == ("y",) for e in samples])
    assert 0.4 < share < 0.6
    assert all(len(e.prompt) % 2 == 1 for e in samples)  # even-length strings plus '?'
    few = get_task("fewshot", shots=3, alphabet=10)
    for _ in range(100):
        e = few.sample(rng)
        assert len(e.choices) == 4 and len(set(e.choices)) == 4 and e.answer in e.choices
        text = "".join(e.prompt)
        pairs = [p.split(">") for p in text.split(",")]
        shift = (ord(pairs[0][1]) - ord(pairs[0][0])) % 10
        assert all((ord(b) - ord(a)) % 10 == shift for a, b in pairs[:-1])
        assert (ord(e.answer[0]) - ord(pairs[-1][0])) % 10 == shift


def test_encoding_layout() -> None:
    task = get_task("add", digits=2)
    split = make_split(task, 10, 5, 0)
    vocab = task.vocab()
    enc = encode(split.test, vocab, seq_len_for(split))
    ex = split.test[0]
    row = enc.ids[0]
    assert row[0] == vocab.bos_id and vocab.decode(row[1:7]) == "".join(ex.prompt)
    assert int(enc.prompt_len[0]) == 7 and int(enc.target_len[0]) == 4  # 3 digits + <eos>
    targets = enc.ids[:, 1:][enc.target_mask()].view(5, 4)
    assert targets[0, :3].tolist() == vocab.encode(ex.answer) and targets[0, 3] == vocab.eos_id
    mc = make_split(get_task("dyck"), 20, 8, 0)
    enc_mc = encode(mc.test, get_task("dyck").vocab(), seq_len_for(mc))
    assert enc_mc.choice_ids.shape[:2] == (8, 2)
    picked = enc_mc.choice_ids[torch.arange(8), enc_mc.correct]
    assert torch.equal(picked, enc_mc.ids)


def test_specs_and_errors() -> None:
    assert parse_task_spec("add:digits=4,reversed=true") == ("add", {"digits": 4, "reversed": True})
    assert task_from_spec("add:digits=4,reversed=true").spec == "add:digits=4,reversed=true"
    assert task_from_spec("add:digits=3").spec == "add"
    with pytest.raises(LmlabError, match="unknown task"):
        get_task("nope")
    with pytest.raises(LmlabError, match="unknown config key"):
        task_from_spec("add:digit=4")
    with pytest.raises(LmlabError, match="must be int"):
        task_from_spec("add:digits=x")
    with pytest.raises(LmlabError, match="distinct problems"):
        make_split(get_task("add", digits=1), 90, 20)
