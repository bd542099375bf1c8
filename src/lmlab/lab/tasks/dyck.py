"""Bracket matching (Dyck languages): is a string of brackets balanced? Multiple choice.

Balanced strings are random Dyck words; unbalanced ones are balanced strings with one
small corruption (a bracket's type changed, or two neighbours swapped) of the same length,
so neither the length nor the bracket counts give the answer away. Half are balanced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmlab.errors import LmlabError
from lmlab.lab.tasks.base import Example, Task

PAIRS = ["()", "[]", "{}", "<>"]
YES, NO = ("y",), ("n",)


def balanced(s: str) -> bool:
    closing = {p[1]: p[0] for p in PAIRS}
    stack: list[str] = []
    for ch in s:
        if ch in closing:
            if not stack or stack.pop() != closing[ch]:
                return False
        else:
            stack.append(ch)
    return not stack


@dataclass
class Dyck(Task):
    max_pairs: int = 6
    types: int = 2

    name = "dyck"
    description = "bracket matching: is the string balanced? (choices y / n)"

    def __post_init__(self) -> None:
        if not 1 <= self.types <= len(PAIRS) or self.max_pairs < 2:
            raise LmlabError(f"dyck needs 1-{len(PAIRS)} types and max_pairs >= 2")

    def symbols(self) -> list[str]:
        return [*"".join(PAIRS[: self.types]), "?", "y", "n"]

    @property
    def answer_format(self) -> str:
        return "one letter: 'y' if the brackets are balanced, else 'n' (multiple choice)"

    @property
    def chance(self) -> float:
        return 0.5

    def _word(self, rng: np.random.Generator, n: int) -> str:
        out, stack, opened = [], [], 0
        while opened < n or stack:
            if opened < n and (not stack or rng.random() < 0.5):
                p = PAIRS[int(rng.integers(self.types))]
                out.append(p[0])
                stack.append(p[1])
                opened += 1
            else:
                out.append(stack.pop())
        return "".join(out)

    def _corrupt(self, rng: np.random.Generator, s: str) -> str:
        for _ in range(100):
            chars = list(s)
            i = int(rng.integers(len(chars)))
            if self.types > 1 and rng.random() < 0.5:
                kind = next(p for p in PAIRS if chars[i] in p)
                others = [p for p in PAIRS[: self.types] if p != kind]
                chars[i] = others[int(rng.integers(len(others)))][kind.index(chars[i])]
            else:
                j = min(i + 1, len(chars) - 1) if i + 1 < len(chars) else i - 1
                chars[i], chars[j] = chars[j], chars[i]
            t = "".join(chars)
            if not balanced(t):
                return t
        return ")" + s[1:]  # an unbalanced fallback that cannot fail

    def sample(self, rng: np.random.Generator) -> Example:
        n = int(rng.integers(2, self.max_pairs + 1))
        s = self._word(rng, n)
        if rng.random() < 0.5:
            s = self._corrupt(rng, s)
        answer = YES if balanced(s) else NO
        return Example(tuple(s + "?"), answer, key=s, choices=(YES, NO))
