"""Synthetic conversations for the chat tests (import as ``from chat_synth import ...``)."""

from __future__ import annotations

import json
import random

THINGS = ["fox", "dog", "box", "jug", "zebra", "world"]
COLOURS = ["brown", "lazy", "quick", "daft", "blue", "red"]


def conversations(n: int, seed: int) -> list[list[dict[str, str]]]:
    """Two-exchange chats whose answers follow from the question (learnable, so a few steps
    of training lower the held-out response loss)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        msgs = [{"role": "system", "content": "Answer in one line."}]
        for _ in range(2):
            k = rng.randrange(len(THINGS))
            msgs.append({"role": "user", "content": f"What is the {THINGS[k]} like?"})
            msgs.append({"role": "assistant", "content": f"The {THINGS[k]} is {COLOURS[k]}."})
        out.append(msgs)
    return out


def write_jsonl(path, convs) -> str:
    path.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs), "utf-8")
    return str(path)
