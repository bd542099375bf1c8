"""Conversations for chat fine-tuning: the built-in data sets with fixed splits, or a JSONL
file of your own.

The data spec (``[task.data]`` of the run's ``config.toml``) is ``{"builtin": NAME}`` or
``{"train": FILE, "validation": FILE?, "test": FILE?}``. Built-in:

* ``dailydialog``: :func:`lmlab.tasks.dialogue.load_dailydialog` (2,324 / 150 / 150
  dialogues, seeded); the first speaker is the user, the second the assistant;
* ``samsum``: summarisation as single-turn chat: each dialogue becomes one user turn
  (:data:`SAMSUM_PROMPT` + the dialogue) and its reference summary the assistant turn.
  ``samsum_validation.json`` (818) is the training part, of which a seeded
  :data:`SAMSUM_VALIDATION` are held out for validation; ``samsum_test.json`` (819) is the test.

A JSONL file holds one conversation per line, ``{"messages": [{"role": ..., "content":
...}, ...]}``; a line that is not such an object, or a conversation with an unknown role or
turns that do not alternate, is one error line naming the file and line. Without
``validation`` a seeded 10% (at least one) of the training file is held out for it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError
from lmlab.tasks.dialogue import as_messages, check_conversation

Messages = list[dict[str, str]]
BUILTINS = {
    "dailydialog": "DailyDialog (2,324 / 150 / 150 dialogues, the second speaker answers)",
    "samsum": "SAMSum summaries as single-turn chat (validation file for training, test scored)",
}
SAMSUM_PROMPT = "Summarize this dialogue in one or two sentences:\n\n{dialogue}"
SAMSUM_VALIDATION = 100  # held out of samsum_validation.json (818) for model selection
SPLIT_SEED = 1
VALIDATION_SHARE = 0.1


@dataclass
class ChatData:
    name: str
    train: list[Messages]
    validation: list[Messages]
    test: list[Messages] | None = None
    summaries: bool = False  # SAMSum: the test's assistant turns are reference summaries
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[Messages]:
        part = getattr(self, name, None)
        if part is None:
            raise LmlabError(f"{self.name} has no {name} split")
        return part

    def sizes(self) -> str:
        parts = [("train", self.train), ("validation", self.validation), ("test", self.test)]
        return ", ".join(f"{k} {len(v):,}" for k, v in parts if v is not None)


def samsum_messages(dialogue: str, summary: str | None = None) -> Messages:
    """A SAMSum dialogue as a user turn asking for its summary (and the summary's turn)."""
    msgs = [{"role": "user", "content": SAMSUM_PROMPT.format(dialogue=dialogue.strip())}]
    if summary is not None:
        msgs.append({"role": "assistant", "content": summary.strip()})
    return msgs


def read_jsonl(path: str | Path) -> list[Messages]:
    """Conversations from a JSONL file; the first bad line is a one-line error."""
    p = Path(path)
    if not p.is_file():
        raise LmlabError(f"chat data file {p} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LmlabError(f"{p} is not UTF-8 text; convert it") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p.name} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LmlabError(f"{where} is not valid JSON ({e.msg})") from None
        msgs = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise LmlabError(
                f'{where}: expected {{"messages": [{{"role": ..., "content": ...}}, ...]}}'
            )
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                raise LmlabError(f"{where}: message {i + 1} needs a role and a string content")
        check_conversation(msgs, where)
        out.append([{"role": m["role"], "content": m["content"]} for m in msgs])
    if not out:
        raise LmlabError(f"{p} holds no conversation")
    return out


def _hold_out(items: list, n: int, seed: int) -> tuple[list, list]:
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    held = set(order[:n])
    return [x for i, x in enumerate(items) if i not in held], [items[i] for i in sorted(held)]


def data_spec(data: str, validation: str | None = None, test: str | None = None) -> dict[str, Any]:
    """The ``[task.data]`` table for ``--data`` (a built-in name or a JSONL file)."""
    if data in BUILTINS:
        if validation or test:
            raise LmlabError(f"--validation/--test are for your own files; {data} has its splits")
        return {"builtin": data}
    if not data.endswith(".jsonl") and not Path(data).is_file():
        raise LmlabError(
            f"--data {data}: not a built-in data set ({', '.join(BUILTINS)}) nor a .jsonl file"
        )
    spec = {"train": str(Path(data).resolve())}
    for k, v in (("validation", validation), ("test", test)):
        if v:
            spec[k] = str(Path(v).resolve())
    return spec


def load_chat_data(spec: dict[str, Any], seed: int = SPLIT_SEED) -> ChatData:
    """The conversations of a run's data spec, split."""
    name = spec.get("builtin")
    if name == "dailydialog":
        from lmlab.tasks.dialogue import load_dailydialog

        d = load_dailydialog()
        parts = {k: [as_messages(t) for t in v] for k, v in d.items()}
        return ChatData("dailydialog", parts["train"], parts["validation"], parts["test"])
    if name == "samsum":
        from lmlab.tasks.summarize.data import load_summaries

        s = load_summaries("samsum")
        train = [samsum_messages(t, y) for t, y in zip(s["train"].texts, s["train"].summaries,
                                                       strict=True)]  # fmt: skip
        test = [samsum_messages(t, y) for t, y in zip(s["test"].texts, s["test"].summaries,
                                                      strict=True)]  # fmt: skip
        train, val = _hold_out(train, SAMSUM_VALIDATION, seed)
        return ChatData("samsum", train, val, test, summaries=True)
    if name is not None:
        raise LmlabError(
            f"unknown chat data set {name!r}; choose {', '.join(BUILTINS)} or a .jsonl"
        )
    if "train" not in spec:
        raise LmlabError("[task.data] needs builtin = NAME or train = FILE.jsonl")
    train = read_jsonl(spec["train"])
    notes = []
    if spec.get("validation"):
        val = read_jsonl(spec["validation"])
    else:
        if len(train) < 2:
            raise LmlabError(f"{spec['train']} holds one conversation; give at least two "
                             "(one is held out for validation) or --validation FILE")  # fmt: skip
        n = max(1, round(VALIDATION_SHARE * len(train)))
        train, val = _hold_out(train, n, seed)
        notes.append(f"{n:,} conversations of {Path(spec['train']).name} held out for validation "
                     f"(seed {seed})")  # fmt: skip
    test = read_jsonl(spec["test"]) if spec.get("test") else None
    return ChatData(Path(spec["train"]).stem, train, val, test, notes=notes)
