"""From start/end logits to answers: the usual n-best search over spans.

In each window, the ``n_best`` most likely start tokens and end tokens among the passage
tokens are paired; a pair is a candidate when the end is not before the start and the span
is at most ``max_answer_tokens`` long. Its probability is ``p_start(i) * p_end(j)``, each a
softmax over the window's passage tokens plus the "no answer here" slot (position 0), so a
window that does not hold the answer gives low probabilities to all its spans. Candidates
from all of a question's windows are mapped to character offsets of the context, merged by
offsets (the best probability kept), and ranked.
"""

from __future__ import annotations

import numpy as np

from lmlab.tasks.qa.windows import Window, span_chars


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def window_candidates(
    window: Window,
    logits: np.ndarray,
    context: str,
    n_best: int = 20,
    max_answer_tokens: int = 30,
) -> list[tuple[float, int, int]]:
    """``(probability, char_start, char_end)`` candidates of one window; ``logits`` is the
    window's ``(T, 2)`` start/end logits."""
    p0, n = window.passage_start, window.n_passage
    if n == 0:
        return []
    start = _log_softmax(np.concatenate([logits[:1, 0], logits[p0 : p0 + n, 0]]))[1:]
    end = _log_softmax(np.concatenate([logits[:1, 1], logits[p0 : p0 + n, 1]]))[1:]
    k = min(n_best, n)
    best_s = np.argpartition(-start, k - 1)[:k]
    best_e = np.argpartition(-end, k - 1)[:k]
    out = []
    for i in best_s:
        for j in best_e:
            if j < i or j - i + 1 > max_answer_tokens:
                continue
            a, b = span_chars(window, p0 + int(i), p0 + int(j), context)
            if b > a:
                out.append((float(np.exp(start[i] + end[j])), a, b))
    return out


def best_answers(
    windows: list[Window],
    logits: list[np.ndarray],
    context: str,
    top: int = 1,
    n_best: int = 20,
    max_answer_tokens: int = 30,
) -> list[dict]:
    """The ``top`` answers of one question from its windows: dicts with ``text``, ``start``,
    ``end`` (character offsets into ``context``) and ``score`` (a probability)."""
    best: dict[tuple[int, int], float] = {}
    for w, lg in zip(windows, logits, strict=True):
        for p, a, b in window_candidates(w, lg, context, n_best, max_answer_tokens):
            if p > best.get((a, b), -1.0):
                best[(a, b)] = p
    ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[: max(1, top)]
    return [{"text": context[a:b], "start": a, "end": b, "score": p} for (a, b), p in ranked]
