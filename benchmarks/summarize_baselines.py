"""Extractive summarisation baselines on the test splits: lead-k and TextRank (TF-IDF
sentence graph), ROUGE-1/2/L F1 with rouge-score (English stemmed, Chinese on characters).
These are the figures an abstractive model has to beat (issue 14: LCSTS and CSL >= 3
ROUGE-L points above the best extractive baseline; SAMSum published lead-3 31.4).

    python benchmarks/summarize_baselines.py        # ~1 minute on one core
"""

from __future__ import annotations

import sys
import time

from _common import shared, table
from lmlab.tasks.summarize.data import DATASETS, load_summaries
from lmlab.tasks.summarize.extractive import lead, textrank
from lmlab.tasks.summarize.metrics import rouge

K = {"lcsts": 1, "csl": 1, "samsum": 3, "xsum": 1}  # sentences: a headline, a title, 3 turns


def main() -> int:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
