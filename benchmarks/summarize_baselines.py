"""Extractive summarisation baselines on the test splits: lead-k and TextRank (TF-IDF
sentence graph), ROUGE-1/2/L F1 with rouge-score (English stemmed, Chinese on characters).
These are the figures an abstractive model has to beat (issue 14: LCSTS and CSL >= 3
ROUGE-L points above the best extractive baseline; SAMSum published lead-3 31.4).

    python benchmarks/summarize_baselines.py        # ~1 minute on one core
    python benchmarks/summarize_baselines.py --zero-shot 100   # + SmolLM2 zero-shot on XSum

``--zero-shot N`` adds SmolLM2-135M-Instruct's zero-shot summaries (``builtin:smollm2``,
greedy, lmlab's default English instruction, at most 60 new tokens) of a seeded N of the
XSum articles, scored beside lead-1 and TextRank-1 on the same N.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import shared, table
from lmlab.tasks.summarize.data import DATASETS, load_summaries
from lmlab.tasks.summarize.extractive import lead, textrank
from lmlab.tasks.summarize.metrics import rouge

K = {"lcsts": 1, "csl": 1, "samsum": 3, "xsum": 1}  # sentences: a headline, a title, 3 turns


def zero_shot(n: int, threads: int) -> None:
    """SmolLM2 zero-shot on a seeded ``n`` of XSum, with the extractive baselines on them."""
    import numpy as np
    import torch

    from lmlab.tasks.summarize.prompted import open_chat_summarizer

    torch.set_num_threads(threads)
    test = load_summaries("xsum")["test"]
    keep = np.sort(np.random.default_rng(0).permutation(len(test))[:n])
    texts, refs = [test.texts[i] for i in keep], [test.summaries[i] for i in keep]
    t = time.perf_counter()
    hyps = open_chat_summarizer("builtin:smollm2", "en", max_new_tokens=60).summarize(
        texts, progress=True
    )
    seconds = time.perf_counter() - t
    rows = []
    for name, outs in (("SmolLM2-135M-Instruct zero-shot", hyps),
                       ("lead-1", [lead(x, "en", 1) for x in texts]),
                       ("textrank-1", [textrank(x, "en", 1) for x in texts])):  # fmt: skip
        r = rouge(outs, refs, "en")
        rows.append([name, r["rouge1"], r["rouge2"], r["rougeL"],
                     f"{np.mean([len(o.split()) for o in outs]):.1f}"])  # fmt: skip
    print(f"\nXSum, seeded {n} of {len(test):,} articles (seed 0); SmolLM2 took {seconds / 60:.1f} "
          f"min on {threads} thread(s):\n")  # fmt: skip
    print(table(["summariser", "ROUGE-1", "ROUGE-2", "ROUGE-L", "words"], rows))
    for x, h, r in list(zip(texts, hyps, refs, strict=True))[:3]:
        print(f"\n- article: {' '.join(x.split())[:160]}...\n  SmolLM2: {h}\n  reference: {r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zero-shot", type=int, default=0, metavar="N",
                    help="also SmolLM2 zero-shot on a seeded N XSum articles")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    shared("summarization_zh")
    rows = []
    for name, lang in DATASETS.items():
        test = load_summaries(name)["test"]
        for method, fn in (("lead", lead), ("textrank", textrank)):
            t = time.perf_counter()
            r = rouge([fn(x, lang, K[name]) for x in test.texts], test.summaries, lang)
            rows.append([name, lang, f"{len(test):,}", f"{method}-{K[name]}", r["rouge1"],
                         r["rouge2"], r["rougeL"], f"{time.perf_counter() - t:.1f}"])  # fmt: skip
    print(table(["data", "lang", "test", "baseline", "ROUGE-1", "ROUGE-2", "ROUGE-L", "s"], rows))
    if args.zero_shot:
        zero_shot(args.zero_shot, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
