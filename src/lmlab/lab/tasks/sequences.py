"""Sequence tasks on random tokens: copying, reversal, associative recall and induction.

Symbols are lower-case letters (the first ``symbols`` of them). Associative recall shows
key-value pairs and asks for the value of one key; induction repeats a random sequence and
asks the model to continue the repeat, which a two-layer attention circuit (an induction
head, Olsson et al. 2022) solves by looking up what followed the current token last time.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from lmlab.errors import LmlabError
from lmlab.lab.tasks.base import Example, Task

LETTERS = list(string.ascii_lowercase)


def _check(length: int, alphabet: int) -> None:
    if length < 1:
        raise LmlabError(f"length must be at least 1, got {length}")
    if not 2 <= alphabet <= 26:
        raise LmlabError(f"alphabet must be between 2 and 26, got {alphabet}")


@dataclass
class Copy(Task):
    length: int = 8
    alphabet: int = 10

    name = "copy"
    description = "copy a random string after '>'"

    def __post_init__(self) -> None:
        _check(self.length, self.alphabet)

    def symbols(self) -> list[str]:
        return [*LETTERS[: self.alphabet], ">"]

    @property
    def answer_format(self) -> str:
        return f"the {self.length} letters of the prompt, in the same order"

    def transform(self, s: str) -> str:
        return s

    def sample(self, rng: np.random.Generator) -> Example:
        s = "".join(LETTERS[i] for i in rng.integers(self.alphabet, size=self.length))
        return Example(tuple(s + ">"), tuple(self.transform(s)), key=s)


@dataclass
class Reverse(Copy):
    name = "reverse"
    description = "write a random string backwards after '>'"

    @property
    def answer_format(self) -> str:
        return f"the {self.length} letters of the prompt, last first"

    def transform(self, s: str) -> str:
        return s[::-1]


@dataclass
class Recall(Task):
    """``a3c7e1?c`` -> ``7``: associative recall of one value among ``pairs`` key-value pairs."""

    pairs: int = 6
    values: int = 10

    name = "recall"
    description = "associative recall: key-value pairs, then the value of one key"

    def __post_init__(self) -> None:
        if not 1 <= self.pairs <= 26 or not 2 <= self.values <= 10:
            raise LmlabError("recall needs 1-26 pairs and 2-10 values")

    def symbols(self) -> list[str]:
        return [*LETTERS, *"0123456789"[: self.values], "?"]

    @property
    def answer_format(self) -> str:
        return "one digit: the value written after the queried letter"

    def sample(self, rng: np.random.Generator) -> Example:
        keys = rng.choice(26, size=self.pairs, replace=False)
        vals = rng.integers(self.values, size=self.pairs)
        q = int(rng.integers(self.pairs))
        body = "".join(f"{LETTERS[k]}{v}" for k, v in zip(keys, vals, strict=True))
        prompt = f"{body}?{LETTERS[keys[q]]}"
        return Example(tuple(prompt), (str(vals[q]),), key=prompt)


@dataclass
class Induction(Task):
    """``s|s[:k]`` -> ``s[k:]``: continue a repeated random sequence (induction heads)."""

    length: int = 12
    shown: int = 4
    alphabet: int = 16

    name = "induction"
    description = "repeated random sequence: continue the second copy (induction heads)"

    def __post_init__(self) -> None:
        _check(self.length, self.alphabet)
        if not 1 <= self.shown < self.length:
            raise LmlabError(f"shown must be between 1 and length-1, got {self.shown}")

    def symbols(self) -> list[str]:
        return [*LETTERS[: self.alphabet], "|"]

    @property
    def answer_format(self) -> str:
        return f"the last {self.length - self.shown} letters of the sequence before '|'"

    def sample(self, rng: np.random.Generator) -> Example:
        s = "".join(LETTERS[i] for i in rng.integers(self.alphabet, size=self.length))
        return Example(tuple(f"{s}|{s[: self.shown]}"), tuple(s[self.shown :]), key=s)
