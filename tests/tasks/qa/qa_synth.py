"""A small learnable QA data set for the tests: the answer follows a fixed cue."""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = ["fox", "dog", "zebra", "box", "jugs", "quick", "lazy", "brown", "daft", "liquor"]
FILL = ["the", "over", "with", "five", "dozen", "my", "how", "pack", "jump", "jumps"]


def synthetic_squad(path: Path, n: int, seed: int) -> Path:
    """``n`` questions "What is the code?" on passages of filler words holding
    "the code is NAME." somewhere (the answer: NAME)."""
    rng = random.Random(seed)
    paragraphs = []
    for k in range(n):
        name = rng.choice(NAMES)
        before = " ".join(rng.choices(FILL, k=rng.randrange(2, 12)))
        after = " ".join(rng.choices(FILL, k=rng.randrange(2, 12)))
        context = f"{before} the code is {name}. {after}"
        start = context.index("code is ") + len("code is ")
        paragraphs.append({"context": context, "qas": [{"id": f"q{k}", "question": "What is the code?",
                           "answers": [{"text": name, "answer_start": start}]}]})  # fmt: skip
    data = {"version": "1.1", "data": [{"title": "synthetic", "paragraphs": paragraphs}]}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
