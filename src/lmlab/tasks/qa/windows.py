"""Question-then-passage inputs for a causal span model, with long passages in windows.

Each input is ``[BOS] Question: <question>\\nPassage: <passage tokens>``: the question comes
first, so that every passage token (which sees only what precedes it in a causal model)
has read the question. A passage longer than the room left in ``max_len`` tokens is cut
into overlapping windows: consecutive windows share ``stride`` tokens (Hugging Face's
``doc_stride``), so an answer near a cut is whole in at least one window.

Every passage token keeps the character offsets ``[start, end)`` of the text it covers
(from the ``tokenizers`` encoding where the tokenizer has one; otherwise each word, number,
Chinese character or mark is encoded alone and its tokens share its offsets), so a span of
tokens maps back to exact characters of the context.

Training labels: the first and last token of the first reference answer where that answer
lies whole in the window; position 0 (the "no answer here" slot) where it does not.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

from lmlab.errors import LmlabError
from lmlab.tasks.qa.data import QAExample
from lmlab.tokenize import Tokenizer

PROMPT = "Question: {question}\nPassage:"
MIN_ROOM = 16  # passage tokens a window must hold at least
_PIECES = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_]+|\S")


@dataclass
class Window:
    example: int  # index of the question in the list given to make_windows
    ids: np.ndarray  # int64: prompt then passage tokens
    passage_start: int  # position of the first passage token in ids
    offsets: np.ndarray  # (n, 2) int64 character offsets of the passage tokens
    start: int = 0  # answer's first token position in ids (0: not in this window)
    end: int = 0

    @property
    def n_passage(self) -> int:
        return len(self.offsets)


def token_offsets(tokenizer: Tokenizer, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Ids of ``text`` and each token's ``[start, end)`` character offsets."""
    hf = getattr(tokenizer, "hf", None)
    if hf is not None:
        enc = hf.encode(text, add_special_tokens=False)
        ids = np.asarray(enc.ids, dtype=np.int64)
        offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        return ids, offsets
    ids_l: list[int] = []
    offs: list[tuple[int, int]] = []
    for m in _PIECES.finditer(text):
        piece = tokenizer.encode(m.group())
        ids_l += piece
        offs += [(m.start(), m.end())] * len(piece)
    return np.asarray(ids_l, dtype=np.int64), np.asarray(offs, dtype=np.int64).reshape(-1, 2)


def prompt_ids(tokenizer: Tokenizer, question: str) -> np.ndarray:
    ids = tokenizer.encode(PROMPT.format(question=" ".join(question.split())))
    bos = tokenizer.bos_id
    return np.asarray(([bos] if bos is not None else []) + list(ids), dtype=np.int64)


def window_starts(n: int, room: int, stride: int) -> list[int]:
    """First token of each window over ``n`` passage tokens, ``room`` tokens each, the
    windows overlapping by ``stride`` tokens; the last one ends at the passage's end."""
    if n <= room:
        return [0]
    step = room - stride
    starts = list(range(0, n - room, step))
    starts.append(n - room)
    return starts


def _token_span(offsets: np.ndarray, start: int, end: int) -> tuple[int, int] | None:
    """First and last passage token covering characters ``[start, end)``."""
    inside = np.flatnonzero((offsets[:, 1] > start) & (offsets[:, 0] < end))
    if len(inside) == 0:
        return None
    return int(inside[0]), int(inside[-1])


def make_windows(
    examples: list[QAExample],
    tokenizer: Tokenizer,
    max_len: int,
    stride: int,
    labels: bool = False,
    where: str = "",
) -> list[Window]:
    """The windows of every question (with answer labels if ``labels``); questions that
    leave no room for the passage, and (with ``labels``) answers longer than a window, are
    skipped and counted in one warning each."""
    if stride < 0:
        raise LmlabError(f"--stride must be at least 0, got {stride}")
    out: list[Window] = []
    skipped: Counter = Counter()
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, ex in enumerate(examples):
        prefix = prompt_ids(tokenizer, ex.question)
        room = max_len - len(prefix)
        if room < MIN_ROOM:
            skipped["question too long for the window (raise --max-len)"] += 1
            continue
        if stride >= room:
            raise LmlabError(
                f"--stride {stride} must be below the passage room of a window ({room} tokens "
                f"of --max-len {max_len} after the question); lower --stride"
            )
        if ex.context not in cache:
            cache[ex.context] = token_offsets(tokenizer, ex.context)
        ids, offsets = cache[ex.context]
        span = None
        if labels:
            a = ex.located
            if a is None:
                skipped["answer without a known offset"] += 1
                continue
            span = _token_span(offsets, a.start, a.end)
            if span is None or span[1] - span[0] + 1 > room:
                skipped["answer longer than a window" if span else "answer not in any token"] += 1
                continue
        for s in window_starts(len(ids), room, stride):
            e = min(s + room, len(ids))
            w = Window(k, np.concatenate([prefix, ids[s:e]]), len(prefix), offsets[s:e])
            if span is not None and s <= span[0] and span[1] < e:
                w.start = len(prefix) + span[0] - s
                w.end = len(prefix) + span[1] - s
            out.append(w)
    for reason, n in skipped.items():
        noun = "answer" if reason.startswith("answer") else "question"
        warnings.warn(f"{where + ': ' if where else ''}{n:,} {noun}{'s' if n != 1 else ''} "
                      f"skipped: {reason}", stacklevel=2)  # fmt: skip
    return out


def span_chars(window: Window, start: int, end: int, context: str) -> tuple[int, int]:
    """Character offsets ``[a, b)`` of passage tokens ``start..end`` (positions in the
    window's ids), without the leading/trailing whitespace a byte-level token carries."""
    a = int(window.offsets[start - window.passage_start, 0])
    b = int(window.offsets[end - window.passage_start, 1])
    while a < b and context[a].isspace():
        a += 1
    while b > a and context[b - 1].isspace():
        b -= 1
    return a, b
