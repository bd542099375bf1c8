"""Dialogue data for supervised chat fine-tuning: DailyDialog with a fixed split, the
conversation checks, assistant-only loss masks through a chat template, and distinct-n.

The fine-tuning itself (full and LoRA, on SmolLM2's template) comes later; these are the
parts it stands on, tested on their own.

* :func:`load_dailydialog`: ``dialogue/dailydialog_test.txt`` (2,624 dialogues, turns ended
  by ``__eou__``); seeded split 2,324 train / 150 validation / 150 test dialogues. The
  speakers alternate; the second one is the assistant.
* :func:`check_conversation`: roles known, an optional system message first, then user and
  assistant alternating from a user turn; otherwise one clear :class:`LmlabError`.
* :func:`assistant_mask`: the token ids of a conversation under a chat template and a 0/1
  mask that is 1 exactly on the assistant turns' tokens (their content and end marker), so
  the loss counts only what the model is taught to say.
* :func:`distinct_n`: distinct n-grams over all n-grams of a set of responses (Li et al.
  2016), on whitespace tokens.
"""

from __future__ import annotations

import random

from lmlab.errors import LmlabError
from lmlab.tasks.datasets import _file

SPLIT = (2324, 150, 150)
SPLIT_SEED = 1


def read_dailydialog(text: str) -> list[list[str]]:
    """Dialogues (lists of turns) from DailyDialog's one-dialogue-per-line format."""
    out = []
    for line in text.splitlines():
        turns = [t.strip() for t in line.split("__eou__")]
        turns = [t for t in turns if t]
        if len(turns) >= 2:
            out.append(turns)
    return out


def load_dailydialog() -> dict[str, list[list[str]]]:
    dialogues = read_dailydialog(_file("dialogue", "dailydialog_test.txt").read_text("utf-8"))
    if len(dialogues) != sum(SPLIT):
        raise LmlabError(f"expected {sum(SPLIT)} DailyDialog dialogues, found {len(dialogues)}")
    order = list(range(len(dialogues)))
    random.Random(SPLIT_SEED).shuffle(order)
    a, b = SPLIT[0], SPLIT[0] + SPLIT[1]
    return {"train": [dialogues[i] for i in sorted(order[:a])],
            "validation": [dialogues[i] for i in sorted(order[a:b])],
            "test": [dialogues[i] for i in sorted(order[b:])]}  # fmt: skip


def as_messages(turns: list[str], system: str = "") -> list[dict[str, str]]:
    """Alternating user/assistant messages (the first speaker is the user)."""
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [
        {"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)
    ]


def check_conversation(messages: list[dict[str, str]], where: str = "conversation") -> None:
    """One line on the first problem: an unknown role, a misplaced system message, two turns
    of one side in a row, or no assistant turn."""
    expect = "user"
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("system", "user", "assistant"):
            raise LmlabError(f"{where}: message {i + 1} has unknown role {role!r}; "
                             "use system, user or assistant")  # fmt: skip
        if role == "system":
            if i:
                raise LmlabError(f"{where}: a system message may only come first (message {i + 1})")
            continue
        if role != expect:
            raise LmlabError(f"{where}: message {i + 1} is a {role} turn where a {expect} turn "
                             "should come; turns must alternate user, assistant, ...")  # fmt: skip
        expect = "assistant" if role == "user" else "user"
    if not any(m.get("role") == "assistant" for m in messages):
        raise LmlabError(f"{where}: no assistant turn to learn from")


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def assistant_mask(
    template, messages: list[dict[str, str]], tokenizer
) -> tuple[list[int], list[int]]:
    """``(ids, mask)``: the conversation's token ids and 1 on every assistant turn's tokens.

    An assistant turn's tokens are those after the prompt that asks for it (the history
    rendered with the generation prompt) up to the end of the history that includes it;
    where the tokenizer merges across that boundary, the turn starts at the first token in
    which the two renderings differ."""
    from lmlab.serve.chat_template import encode_chat

    check_conversation(messages)
    ids = encode_chat(template, messages, tokenizer, add_generation_prompt=False)
    mask = [0] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        asked = encode_chat(template, messages[:i], tokenizer, add_generation_prompt=True)
        upto = encode_chat(template, messages[: i + 1], tokenizer, add_generation_prompt=False)
        if ids[: len(upto)] != upto:
            raise LmlabError("the chat template renders a conversation differently from its "
                             "beginning; assistant tokens cannot be located")  # fmt: skip
        start = min(len(asked), _common_prefix(asked, upto))
        for k in range(start, len(upto)):
            mask[k] = 1
    return ids, mask


def distinct_n(responses: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over ``responses`` (0 when there are none)."""
    seen, total = set(), 0
    for r in responses:
        w = r.split()
        grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0
