"""Arithmetic tasks: multi-digit addition and multiplication, and a∘b mod p.

Addition and multiplication are written in characters with zero-padded operands and
answers of fixed width (``007+123=0130``), so every answer has the same number of tokens
and exact match is the all-or-nothing product of the per-digit successes (the mirage
argument of Schaeffer et al. 2023). ``reversed=true`` writes the answer least-significant
digit first, the order in which carries are computed (Lee et al. 2023). ``scratchpad=true``
(addition) writes, before the answer, each column's digit and carry from the right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmlab.errors import LmlabError
from lmlab.lab.tasks.base import Example, Task

DIGITS = list("0123456789")


def _check_digits(digits: int, most: int) -> None:
    if not 1 <= digits <= most:
        raise LmlabError(f"digits must be between 1 and {most}, got {digits}")


@dataclass
class Addition(Task):
    digits: int = 3
    reversed: bool = False
    scratchpad: bool = False

    name = "add"
    description = "multi-digit addition a+b (plain or reversed answer, optional scratchpad)"

    def __post_init__(self) -> None:
        _check_digits(self.digits, 18)

    def symbols(self) -> list[str]:
        return [*DIGITS, "+", "=", ",", "|"]

    @property
    def answer_format(self) -> str:
        order = "least significant digit first" if self.reversed else "most significant first"
        fmt = f"the sum as {self.digits + 1} digits, zero-padded, {order}"
        if self.scratchpad:
            fmt = (
                "a scratchpad of one 'digit carry' pair per column from the right, separated "
                f"by ',', then '|' and {fmt}"
            )
        return fmt

    def make(self, a: int, b: int) -> Example:
        d = self.digits
        prompt = f"{a:0{d}d}+{b:0{d}d}="
        total = f"{a + b:0{d + 1}d}"
        answer = total[::-1] if self.reversed else total
        if self.scratchpad:
            cols, carry = [], 0
            for x, y in zip(f"{a:0{d}d}"[::-1], f"{b:0{d}d}"[::-1], strict=True):
                s = int(x) + int(y) + carry
                carry = s // 10
                cols.append(f"{s % 10}{carry}")
            answer = ",".join(cols) + "|" + answer
        return Example(tuple(prompt), tuple(answer), key=f"{a}+{b}")

    def sample(self, rng: np.random.Generator) -> Example:
        hi = 10**self.digits
        return self.make(int(rng.integers(hi)), int(rng.integers(hi)))

    def all_problems(self) -> list[Example] | None:
        hi = 10**self.digits
        if hi * hi > 200_000:
            return None
        return [self.make(a, b) for a in range(hi) for b in range(hi)]


@dataclass
class Multiplication(Task):
    digits: int = 2
    reversed: bool = False

    name = "mul"
    description = "multi-digit multiplication a*b"

    def __post_init__(self) -> None:
        _check_digits(self.digits, 9)

    def symbols(self) -> list[str]:
        return [*DIGITS, "*", "="]

    @property
    def answer_format(self) -> str:
        order = "least significant digit first" if self.reversed else "most significant first"
        return f"the product as {2 * self.digits} digits, zero-padded, {order}"

    def make(self, a: int, b: int) -> Example:
        d = self.digits
        total = f"{a * b:0{2 * d}d}"
        answer = total[::-1] if self.reversed else total
        return Example(tuple(f"{a:0{d}d}*{b:0{d}d}="), tuple(answer), key=f"{a}*{b}")

    def sample(self, rng: np.random.Generator) -> Example:
        hi = 10**self.digits
        return self.make(int(rng.integers(hi)), int(rng.integers(hi)))

    def all_problems(self) -> list[Example] | None:
        hi = 10**self.digits
        if hi * hi > 200_000:
            return None
        return [self.make(a, b) for a in range(hi) for b in range(hi)]


OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div"}


@dataclass
class Modular(Task):
    """``a op b mod p`` with one token per number (as in the grokking experiments)."""

    p: int = 97
    op: str = "+"

    name = "mod"
    description = (
        "modular arithmetic a∘b mod p (p = 97, 113, ...; op + - * /), one token per number"
    )
    sep = " "

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise LmlabError(f"op must be one of {' '.join(OPS)}, got {self.op!r}")
        if self.p < 2 or (self.op == "/" and any(self.p % k == 0 for k in range(2, self.p))):
            raise LmlabError(f"p must be at least 2 (and prime for '/'), got {self.p}")

    def symbols(self) -> list[str]:
        return [*(str(i) for i in range(self.p)), self.op, "="]

    @property
    def answer_format(self) -> str:
        return f"one token: the residue in 0..{self.p - 1}"

    @property
    def chance(self) -> float:
        return 1.0 / self.p

    def result(self, a: int, b: int) -> int:
        p = self.p
        if self.op == "+":
            return (a + b) % p
        if self.op == "-":
            return (a - b) % p
        if self.op == "*":
            return (a * b) % p
        return (a * pow(b, p - 2, p)) % p

    def make(self, a: int, b: int) -> Example:
        c = self.result(a, b)
        return Example((str(a), self.op, str(b), "="), (str(c),), key=f"{a}{self.op}{b}")

    def sample(self, rng: np.random.Generator) -> Example:
        lo = 1 if self.op == "/" else 0
        return self.make(int(rng.integers(self.p)), int(rng.integers(lo, self.p)))

    def all_problems(self) -> list[Example] | None:
        lo = 1 if self.op == "/" else 0
        return [self.make(a, b) for a in range(self.p) for b in range(lo, self.p)]
