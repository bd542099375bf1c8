"""Baselines for extractive QA, measured beside the span model on the same questions.

* :func:`lexical_answer`: the sliding-window lexical-overlap baseline (after Richardson et
  al.'s MCTest sliding window with distance): the sentence with the most question words
  (each weighted by its rarity in the passage, ``log(1 + n / count)``), then in it the run
  of non-question words nearest the question's words, up to ``max_span`` units (English
  words; Chinese characters). No training, only counting.
* :class:`GenerativeQA`: an instruct LLM answering zero-shot through its chat template and
  lmlab's generation engine (greedy, one line): the answer need not be a span of the passage.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_UNITS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_]+(?:['.][^\W_]+)*")
STOP_EN = set(
    ["a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "that", "this", "these", "those", "it", "its", "as", "into", "than", "then", "there", "their", "they", "he", "she", "his", "her", "him", "has", "have", "had", "not", "no", "can", "could", "would", "should", "will", "shall", "may", "might", "must", "about", "after", "before", "during", "over", "under", "between", "s"]
)  # fmt: skip
STOP_ZH = set("的了是在和与及或吗呢吧啊什么哪谁几多少怎样如何为何是否有一个这那其之中上下")


def units(text: str) -> list[tuple[str, int, int]]:
    """``(unit, start, end)``: lower-cased words and numbers, Chinese characters one by one."""
    return [(m.group().lower(), m.start(), m.end()) for m in _UNITS.finditer(text)]


_SENT_END = re.compile(r"[.!?。！？；;]+[\"'”」）)]*\s*|\n+")


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``."""
    out, a = [], 0
    for m in _SENT_END.finditer(text):
        if m.end() > a:
            out.append((a, m.end()))
            a = m.end()
    if a < len(text):
        out.append((a, len(text)))
    return out


def lexical_answer(question: str, context: str, max_span: int = 4, window: int = 0) -> dict:
    """The span the sliding-window overlap baseline answers: ``text``, ``start``, ``end``,
    ``score`` (the overlap, not a probability).

    The passage's sentences (with ``window`` units of the next one) are scored by the
    question units they hold, each weighted by its rarity in the passage; in the best
    sentence, every run of units that are neither question units nor stop words is a
    candidate, cut to ``max_span`` units, and the one nearest a question unit wins (ties:
    the earlier)."""
    toks = units(context)
    stop = STOP_ZH | STOP_EN
    q = {u for u, _, _ in units(question) if u not in stop}
    empty = {"text": "", "start": 0, "end": 0, "score": 0.0}
    if not toks:
        return empty
    counts = Counter(u for u, _, _ in toks)
    n = len(toks)
    weight = {w: math.log(1 + n / counts[w]) for w in q if w in counts}
    best_sent, best_score = None, -1.0
    for a, b in sentences(context):
        inside = [i for i, (_, s, _) in enumerate(toks) if a <= s < b]
        if not inside:
            continue
        ext = inside + list(range(inside[-1] + 1, min(n, inside[-1] + 1 + window)))
        sc = math.fsum(weight.get(w, 0.0) for w in {toks[i][0] for i in ext})  # order-free
        if sc > best_score:
            best_sent, best_score = inside, sc
    if best_sent is None:
        return empty
    hits = [i for i in best_sent if toks[i][0] in q]
    runs, cur = [], []
    for i in best_sent:
        w = toks[i][0]
        if w in q or w in stop:
            if cur:
                runs.append(cur)
            cur = []
        else:
            cur.append(i)
    if cur:
        runs.append(cur)
    if not runs:
        return empty

    def distance(run: list[int]) -> int:
        return min((min(abs(i - h) for i in run) for h in hits), default=0)

    best = None
    for run in runs:
        if hits:  # keep the part of a long run nearest the question's units
            nearest = min(hits, key=lambda h: min(abs(i - h) for i in run))
            run = run[:max_span] if nearest < run[0] else run[-max_span:]
        else:
            run = run[:max_span]
        key = (-distance(run), -run[0])
        if best is None or key > best[0]:
            best = (key, run)
    run = best[1]
    a, b = toks[run[0]][1], toks[run[-1]][2]
    return {"text": context[a:b], "start": a, "end": b, "score": float(best_score)}


PROMPT = (
    "Read the passage, then answer the question with only the few words of the passage that "
    "answer it.\n\n"
    "Passage: {context}\n\nQuestion: {question}"
)


class GenerativeQA:
    """An instruct model (``builtin:smollm2`` by default) answering zero-shot."""

    def __init__(self, spec: str = "builtin:smollm2", max_new_tokens: int = 16) -> None:
        from lmlab.interop.sources import open_pretrained
        from lmlab.serve.chat_template import template_from_dict

        self.run = open_pretrained(spec)
        chat = self.run.config.get("chat")
        self.template = template_from_dict(chat, spec) if chat else None
        self.max_new_tokens = max_new_tokens

    def prompt(self, question: str, context: str) -> str:
        user = PROMPT.format(context=context.strip(), question=question.strip())
        if self.template is None:
            return user + "\nAnswer:"
        return self.template.render([{"role": "user", "content": user}])

    def answer(self, question: str, context: str) -> str:
        from lmlab.generate.engine import generate
        from lmlab.generate.sampling import SamplingParams

        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0, stop=["\n"])
        out = generate(self.run.model, self.run.tokenizer, self.prompt(question, context), params)
        return clean_generated(out[0].text)


def clean_generated(text: str) -> str:
    """The answer phrase of a generated reply: first line, without an "Answer:" lead, quotes
    or a final full stop."""
    line = text.strip().split("\n", 1)[0].strip()
    line = re.sub(r"^(the )?answer( is)?\s*[:：]?\s*", "", line, flags=re.IGNORECASE)
    prev = None
    while prev != line:
        prev, line = line, line.strip().strip("\"'“”「」").rstrip(".。").strip()
    return line
