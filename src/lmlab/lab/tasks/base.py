"""What every synthetic task shares: examples, a small vocabulary, a leak-free split, tensors.

A task is a dataclass of its parameters with

* ``sample(rng) -> Example``: one random problem (``numpy.random.Generator``, so seeded);
* ``all_problems()``: every distinct problem, for small problem spaces (else ``None``);
* ``symbols()``: the task's own vocabulary (characters, or whole tokens such as ``"96"``);
* ``answer_format``: a sentence saying what the model must write;
* ``chance``: the exact-match score of guessing (``1/K`` for ``K`` choices, else about 0).

An :class:`Example` is a prompt and the answer the model must write after it, both as
tuples of symbols, plus the problem's identity ``key``. Multiple-choice tasks also list
their ``choices`` (the answer is one of them), which gives the Brier score.

The split is done on the set of distinct problems, so no test problem is ever trained on:
small spaces are enumerated, shuffled with the seed and cut; large ones are split by a
keyed hash of each problem (a fixed ``test_fraction`` of the space is reserved for test).
The test set does not depend on ``n_train``, so runs with more data are measured on the
same problems, and a larger training set extends a smaller one.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from lmlab.errors import LmlabError

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
ENUMERATE_LIMIT = 200_000  # spaces up to this size are enumerated for the split


@dataclass(frozen=True)
class Example:
    prompt: tuple[str, ...]
    answer: tuple[str, ...]
    key: str
    choices: tuple[tuple[str, ...], ...] | None = None

    @property
    def correct(self) -> int:
        """Index of the answer among ``choices``."""
        assert self.choices is not None
        return self.choices.index(self.answer)


class Vocab:
    """Symbol <-> id map with ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, then the task's own."""

    def __init__(self, symbols: list[str], sep: str = "") -> None:
        self.symbols = [PAD, BOS, EOS, *symbols]
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("duplicate symbols in a task vocabulary")
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.sep = sep  # how symbols are joined for display ("" for characters)

    pad_id, bos_id, eos_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, seq: tuple[str, ...] | list[str]) -> list[int]:
        try:
            return [self.index[s] for s in seq]
        except KeyError as e:
            raise LmlabError(f"symbol {e.args[0]!r} is not in this task's vocabulary") from e

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        out = []
        for i in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.symbols[i])
        return self.sep.join(out)

    def show(self, seq: tuple[str, ...]) -> str:
        return self.sep.join(seq)


class Task:
    """Base class of the task dataclasses (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    sep: ClassVar[str] = ""
    test_fraction: ClassVar[float] = 0.2  # share of a large space reserved for test problems

    def symbols(self) -> list[str]:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> Example:
        raise NotImplementedError

    def all_problems(self) -> list[Example] | None:
        return None

    @property
    def answer_format(self) -> str:
        raise NotImplementedError

    @property
    def chance(self) -> float:
        return 0.0

    def vocab(self) -> Vocab:
        return Vocab(self.symbols(), self.sep)

    @property
    def spec(self) -> str:
        """Canonical name with the non-default parameters, e.g. ``add:digits=4,reversed=true``."""
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if v != f.default:
                parts.append(f"{f.name}={str(v).lower() if isinstance(v, bool) else v}")
        return self.name + (":" + ",".join(parts) if parts else "")

    def params(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass
class Split:
    train: list[Example]
    test: list[Example]


def _bucket(key: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the problem and the seed (the split's coin)."""
    h = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def make_split(task: Task, n_train: int, n_test: int, seed: int = 0) -> Split:
    """``n_train`` training and ``n_test`` test problems, disjoint as problems (see module doc)."""
    if n_train < 1 or n_test < 1:
        raise LmlabError(
            f"need at least one training and one test problem (got {n_train}, {n_test})"
        )
    problems = task.all_problems()
    if problems is not None and len(problems) <= ENUMERATE_LIMIT:
        if n_train + n_test > len(problems):
            raise LmlabError(
                f"task {task.spec} has only {len(problems)} distinct problems, fewer than "
                f"{n_train} training + {n_test} test; lower --data or the test size"
            )
        order = np.random.default_rng([seed, 7]).permutation(len(problems))
        test = [problems[i] for i in order[:n_test]]
        train = [problems[i] for i in order[n_test : n_test + n_train]]
        return Split(train, test)
    frac = task.test_fraction
    test = _draw(task, n_test, np.random.default_rng([seed, 1]), lambda k: _bucket(k, seed) < frac)
    train = _draw(
        task, n_train, np.random.default_rng([seed, 2]), lambda k: _bucket(k, seed) >= frac
    )
    return Split(train, test)


def _draw(task: Task, n: int, rng: np.random.Generator, keep) -> list[Example]:
    out: dict[str, Example] = {}
    misses = 0
    while len(out) < n:
        ex = task.sample(rng)
        if ex.key in out or not keep(ex.key):
            misses += 1
            if misses > 20 * n + 10_000:
                raise LmlabError(
                    f"task {task.spec} ran out of distinct problems after {len(out)} of {n}; "
                    "lower --data or make the task larger"
                )
            continue
        out[ex.key] = ex
    return list(out.values())


@dataclass
class Encoded:
    """A set of examples as tensors: ``<bos> prompt answer <eos>``, right-padded with 0.

    ``prompt_len`` counts ``<bos>``; ``target_len`` counts the answer and ``<eos>``.
    For multiple-choice tasks ``choice_ids`` ``(N, K, T)`` holds the same prompt followed
    by each choice, ``choice_len`` ``(N, K)`` their target lengths and ``correct`` ``(N,)``.
    """

    ids: torch.Tensor
    prompt_len: torch.Tensor
    target_len: torch.Tensor
    choice_ids: torch.Tensor | None = None
    choice_len: torch.Tensor | None = None
    correct: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def seq_len(self) -> int:
        return self.ids.shape[1]

    def target_mask(self) -> torch.Tensor:
        """``(N, T-1)`` bool: which next-token targets (``ids[:, 1:]``) are answer tokens."""
        return _span_mask(self.prompt_len, self.target_len, self.seq_len)

    def subset(self, idx: torch.Tensor) -> Encoded:
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return Encoded(
            self.ids[idx],
            self.prompt_len[idx],
            self.target_len[idx],
            pick(self.choice_ids),
            pick(self.choice_len),
            pick(self.correct),
        )


def _span_mask(prompt_len: torch.Tensor, target_len: torch.Tensor, seq_len: int) -> torch.Tensor:
    pos = torch.arange(seq_len - 1).unsqueeze(0)  # target j predicts ids[:, j + 1]
    start = (prompt_len - 1).unsqueeze(-1)
    return (pos >= start) & (pos < start + target_len.unsqueeze(-1))


def encode(examples: list[Example], vocab: Vocab, seq_len: int | None = None) -> Encoded:
    """Encode examples (and their choices) into right-padded tensors of width ``seq_len``."""
    rows = [[vocab.bos_id, *vocab.encode(e.prompt)] for e in examples]
    answers = [[*vocab.encode(e.answer), vocab.eos_id] for e in examples]
    width = seq_len or max(len(r) + len(a) for r, a in zip(rows, answers, strict=True))
    ids = torch.zeros(len(examples), width, dtype=torch.long)
    for i, (r, a) in enumerate(zip(rows, answers, strict=True)):
        seq = r + a
        if len(seq) > width:
            raise LmlabError(f"example of {len(seq)} tokens is longer than {width}")
        ids[i, : len(seq)] = torch.tensor(seq)
    prompt_len = torch.tensor([len(r) for r in rows])
    target_len = torch.tensor([len(a) for a in answers])
    out = Encoded(ids, prompt_len, target_len)
    if examples and examples[0].choices is not None:
        k = len(examples[0].choices)
        cids = torch.zeros(len(examples), k, width, dtype=torch.long)
        clen = torch.zeros(len(examples), k, dtype=torch.long)
        for i, (e, r) in enumerate(zip(examples, rows, strict=True)):
            for j, c in enumerate(e.choices or ()):
                seq = r + vocab.encode(c) + [vocab.eos_id]
                cids[i, j, : len(seq)] = torch.tensor(seq)
                clen[i, j] = len(c) + 1
        out.choice_ids, out.choice_len = cids, clen
        out.correct = torch.tensor([e.correct for e in examples])
    return out


def seq_len_for(split: Split) -> int:
    """A width that fits every example and every choice of both halves of a split."""
    n = 0
    for e in split.train + split.test:
        longest = max([len(e.answer)] + [len(c) for c in e.choices or ()])
        n = max(n, 1 + len(e.prompt) + longest + 1)
    return n
