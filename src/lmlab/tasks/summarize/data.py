"""Summarisation data sets read in place from the shared data folder, with fixed splits.

* ``lcsts``: LCSTS part II (10,666 Weibo text/headline pairs, 10,426 distinct texts); split
  by text with seed 1: 500 texts for test and 500 for validation (with every headline of
  each), the rest training;
* ``csl``: CSL abstract -> title (``csl_ts_dev.tsv`` for training, ``csl_ts_test.tsv`` test);
* ``samsum``: SAMSum dialogues (``samsum_validation.json`` for fine-tuning, ``samsum_test.json``
  test, 819 dialogues);
* ``xsum``: 1,000 XSum BBC articles (test only, for zero-shot use).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass

from lmlab.errors import LmlabError
from lmlab.tasks.datasets import _file
from lmlab.tasks.translate.data import split_by_group

DATASETS = {"lcsts": "zh", "csl": "zh", "samsum": "en", "xsum": "en"}
HELD_OUT = 500
SPLIT_SEED = 1


@dataclass
class Docs:
    texts: list[str]
    summaries: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def _lcsts() -> dict[str, Docs]:
    src = _file("summarization_zh", "lcsts_part2.src.txt").read_text("utf-8").splitlines()
    tgt = _file("summarization_zh", "lcsts_part2.tgt.txt").read_text("utf-8").splitlines()
    if len(src) != len(tgt):
        raise LmlabError(f"LCSTS source and target differ in length ({len(src)} vs {len(tgt)})")
    parts = split_by_group(src, SPLIT_SEED, HELD_OUT, HELD_OUT)
    return {k: Docs([src[i] for i in v], [tgt[i] for i in v]) for k, v in parts.items()}


def _csl(name: str) -> Docs:
    with open(_file("summarization_zh", name), encoding="utf-8", newline="") as f:
        rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if len(r) >= 3]
    return Docs([r[1] for r in rows], [r[2] for r in rows])


def _samsum(name: str) -> Docs:
    rows = json.loads(_file("summarization_en", name).read_text("utf-8"))
    return Docs([r["dialogue"] for r in rows], [r["summary"].strip() for r in rows])


def _xsum() -> Docs:
    lines = _file("summarization_en", "xsum_test_1000.jsonl").read_text("utf-8").splitlines()
    rows = [json.loads(x) for x in lines if x.strip()]
    return Docs([r["document"] for r in rows], [r["summary"] for r in rows])


def load_summaries(name: str) -> dict[str, Docs]:
    """The splits of data set ``name`` (``test`` always; ``train``/``validation`` where the
    data set has them)."""
    if name == "lcsts":
        return _lcsts()
    if name == "csl":
        return {"train": _csl("csl_ts_dev.tsv"), "test": _csl("csl_ts_test.tsv")}
    if name == "samsum":
        return {"train": _samsum("samsum_validation.json"), "test": _samsum("samsum_test.json")}
    if name == "xsum":
        return {"test": _xsum()}
    raise LmlabError(f"unknown summarisation data set {name!r}; choose {', '.join(DATASETS)}")
