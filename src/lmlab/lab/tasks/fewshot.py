"""Few-shot pattern completion in context: infer a hidden rule from examples in the prompt.

Each prompt draws its own rule, a shift of the alphabet by ``s`` letters, shows ``shots``
input>output pairs and asks for the output of a new letter: ``b>e,k>n,x>`` -> ``a``.
No rule can be memorised, so the model must read the rule from its context. The answer is
scored among four choices (the right letter and three other shifts of the query) as well
as generated freely.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from lmlab.errors import LmlabError
from lmlab.lab.tasks.base import Example, Task

LETTERS = string.ascii_lowercase


@dataclass
class FewShot(Task):
    shots: int = 3
    alphabet: int = 10

    name = "fewshot"
    description = "few-shot pattern completion: letter shifts shown in context (4 choices)"

    def __post_init__(self) -> None:
        if self.shots < 1 or not 5 <= self.alphabet <= 26:
            raise LmlabError("fewshot needs shots >= 1 and an alphabet of 5-26 letters")

    def symbols(self) -> list[str]:
        return [*LETTERS[: self.alphabet], ">", ","]

    @property
    def answer_format(self) -> str:
        return "one letter: the query letter shifted like the examples (multiple choice of 4)"

    @property
    def chance(self) -> float:
        return 1.0 / self.alphabet  # a guessed letter; the four choices give 1/4

    def sample(self, rng: np.random.Generator) -> Example:
        k = self.alphabet
        shift = int(rng.integers(1, k))
        xs = rng.choice(k, size=self.shots + 1, replace=False)
        demos = ",".join(f"{LETTERS[x]}>{LETTERS[(x + shift) % k]}" for x in xs[:-1])
        q = int(xs[-1])
        prompt = f"{demos},{LETTERS[q]}>"
        right = LETTERS[(q + shift) % k]
        wrong = [s for s in range(1, k) if s != shift]
        picks = rng.choice(len(wrong), size=3, replace=False)
        options = [right, *(LETTERS[(q + wrong[i]) % k] for i in picks)]
        order = rng.permutation(4)
        choices = tuple((options[i],) for i in order)
        return Example(tuple(prompt), (right,), key=prompt, choices=choices)
