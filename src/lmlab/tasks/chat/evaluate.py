"""Scoring a chat run against its base on the same held-out conversations.

* response perplexity: exp of the mean negative log-likelihood of the assistant's tokens
  only (:mod:`lmlab.tasks.chat.loss`), the tuned model's and the base's;
* generated responses: for each conversation one assistant turn is chosen (seeded; for a
  single-turn set such as SAMSum, the only one), the model replies greedily to the turns
  before it, and distinct-1/2 (Li et al. 2016) are taken over the replies, for the tuned
  model, the base and the reference turns;
* summaries (SAMSum runs): ROUGE-1/2/L F1 of the replies against the reference summaries
  (:func:`lmlab.tasks.summarize.metrics.rouge`, stemmed).
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from lmlab.tasks.chat.loss import response_loss
from lmlab.tasks.dialogue import distinct_n


@dataclass
class ChatReport:
    where: str
    conversations: int
    tokens: int
    ppl: float
    base_ppl: float | None
    distinct: dict[str, dict[str, float]] = field(default_factory=dict)  # who -> d1, d2
    rouge: dict[str, dict[str, float]] = field(default_factory=dict)  # who -> rouge1/2/L
    examples: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def change(self) -> float | None:
        return None if self.base_ppl is None else self.ppl / self.base_ppl - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.where, "conversations": self.conversations,
                "assistant_tokens": self.tokens, "response_ppl": round(self.ppl, 4),
                "base_response_ppl": None if self.base_ppl is None else round(self.base_ppl, 4),
                "ppl_change": None if self.change is None else round(self.change, 4),
                "distinct": self.distinct, "rouge": self.rouge, "examples": self.examples,
                "seconds": round(self.seconds, 1)}  # fmt: skip

    def format(self) -> str:
        lines = [f"held-out response perplexity (assistant tokens only; {self.conversations:,} "
                 f"conversations, {self.tokens:,} tokens): tuned {self.ppl:.3f}"]  # fmt: skip
        if self.base_ppl is not None:
            lines[-1] += f", base {self.base_ppl:.3f} ({100 * self.change:+.1f}%)"
        for who, d in self.distinct.items():
            lines.append(f"distinct-1/2 of {who} responses ({d['n']:,}): {d['distinct1']:.4f} / "
                         f"{d['distinct2']:.4f}, {d['mean_words']:.1f} words on average")  # fmt: skip
        for who, r in self.rouge.items():
            lines.append(f"ROUGE-1/2/L of {who} summaries ({r['n']:,}): {r['rouge1']:.2f} / "
                         f"{r['rouge2']:.2f} / {r['rougeL']:.2f}")  # fmt: skip
        return "\n".join(lines)


def reply_turns(conversations: list, seed: int) -> list[tuple[list, str]]:
    """(turns before it, the reference reply) of one seeded assistant turn per conversation."""
    rng = random.Random(seed)
    out = []
    for msgs in conversations:
        turns = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
        i = rng.choice(turns)
        out.append((msgs[:i], msgs[i]["content"]))
    return out


def _distinct(replies: list[str]) -> dict[str, float]:
    words = [len(r.split()) for r in replies]
    return {"n": len(replies), "distinct1": round(distinct_n(replies, 1), 4),
            "distinct2": round(distinct_n(replies, 2), 4),
            "mean_words": round(sum(words) / max(len(words), 1), 2)}  # fmt: skip


def evaluate_chat(
    run,
    conversations: list,
    where: str,
    summaries: bool = False,
    base: bool = True,
    generate: bool = True,
    seed: int = 0,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    progress: bool = False,
    reply_limit: int | None = None,
    reply_batch: int = 16,
) -> ChatReport:
    """Perplexity (tuned and base), generated replies' distinct-1/2 and, for summaries,
    ROUGE, on ``conversations`` (the replies on a seeded ``reply_limit`` of them, greedy,
    ``reply_batch`` decoded at once)."""
    t0 = time.perf_counter()
    enc = run.encode(conversations, where)
    pad_id = run.tokenizer.eos_id
    loss, n = response_loss(run.model, enc, pad_id, batch_size, bf16=False)
    base_model = run.base_model() if base else None
    base_ppl = None
    if base_model is not None:
        b_loss, _ = response_loss(base_model, enc, pad_id, batch_size, bf16=False)
        base_ppl = math.exp(b_loss)
    report = ChatReport(where, len(enc), n, math.exp(loss), base_ppl)
    if generate:
        turns = reply_turns(conversations, seed)
        if reply_limit is not None and reply_limit < len(turns):  # a seeded sample of them
            keep = sorted(random.Random(seed).sample(range(len(turns)), reply_limit))
            turns = [turns[i] for i in keep]
        models = {"tuned": run.model, **({"base": base_model} if base_model is not None else {})}
        replies: dict[str, list[str]] = {who: [] for who in models}
        bar = tqdm(total=len(turns) * len(models), desc="replies", unit="reply",
                   disable=not (progress and sys.stderr.isatty()))  # fmt: skip
        prefixes = [prefix for prefix, _ in turns]
        for who, m in models.items():
            replies[who] = run.replies(prefixes, m, max_new_tokens, batch=reply_batch,
                                       on_done=lambda _k: bar.update(1))  # fmt: skip
        bar.close()
        refs = [r for _, r in turns]
        for who, rs in {**replies, "reference": refs}.items():
            report.distinct[who] = _distinct(rs)
        if summaries:
            from lmlab.tasks.summarize.metrics import rouge

            for who, rs in replies.items():
                report.rouge[who] = {"n": len(rs), **rouge(rs, refs, "en")}
        for k, (prefix, ref) in enumerate(turns):
            report.examples.append({"prompt": prefix[-1]["content"], "reference": ref,
                                    **{who: rs[k] for who, rs in replies.items()}})  # fmt: skip
    report.seconds = time.perf_counter() - t0
    return report
