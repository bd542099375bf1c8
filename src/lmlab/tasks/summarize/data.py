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


# --- data for training a summariser (``lmlab task train summarize``) ---------------------

CSL_VALIDATION = 100  # CSL has no validation file: held out of csl_ts_dev.tsv by text


@dataclass
class SummaryData:
    """A summariser's three splits, the language (``zh``/``en``) and notes on how they were
    made (split, normalisation)."""

    name: str
    lang: str
    train: Docs
    validation: Docs
    test: Docs
    notes: list[str]

    def split(self, name: str) -> Docs:
        if name not in ("train", "validation", "test"):
            raise LmlabError(f"unknown split {name!r}; use train, validation or test")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {s: len(self.split(s)) for s in ("train", "validation", "test")}


def _subset(docs: Docs, idx: list[int]) -> Docs:
    return Docs([docs.texts[i] for i in idx], [docs.summaries[i] for i in idx])


def guess_lang(texts: list[str]) -> str:
    """``zh`` when at least a fifth of the non-space characters are CJK ideographs."""
    sample = "".join(texts[:500])
    chars = [c for c in sample if not c.isspace()]
    cjk = sum("\u4e00" <= c <= "\u9fff" for c in chars)
    return "zh" if chars and cjk >= 0.2 * len(chars) else "en"


def read_pairs_tsv(path: str, text_column: int = 0, summary_column: int = 1) -> Docs:
    """``text<TAB>summary`` lines (other columns ignored). Lines with an empty side are
    skipped with a counted warning; a line with too few columns is an error."""
    import warnings
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise LmlabError(f"summarisation data file {p} not found")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise LmlabError(f"{p} is not UTF-8 text; convert it to UTF-8") from None
    texts, sums, empty, short = [], [], 0, 0
    need = max(text_column, summary_column) + 1
    for line in lines:
        cols = line.split("\t")
        if len(cols) < need:
            short += bool(line.strip())
            empty += not line.strip()
            continue
        t, s = cols[text_column].strip(), cols[summary_column].strip()
        if not t or not s:
            empty += 1
            continue
        texts.append(t)
        sums.append(s)
    if short:
        raise LmlabError(f"{short:,} lines of {p} have fewer than {need} tab-separated columns; "
                         "expected text<TAB>summary")  # fmt: skip
    if empty:
        warnings.warn(f"{p}: {empty:,} lines with an empty text or summary skipped", stacklevel=2)
    if not texts:
        raise LmlabError(f"{p} holds no text/summary pairs")
    return Docs(texts, sums)


def load_task_data(spec: dict, seed: int = SPLIT_SEED) -> SummaryData:
    """Train/validation/test for ``spec``: ``{"name": "lcsts"|"csl"|"samsum"}`` (built-in
    splits; CSL's validation is 100 texts held out of its training file with ``seed``) or
    ``{"path": FILE.tsv}`` (``text<TAB>summary``; 5% each, at most 500 texts, held out for
    validation and test by text, unless ``validation`` and ``test`` files are given)."""
    name = spec.get("name")
    if name:
        if name not in DATASETS:
            raise LmlabError(f"unknown summarisation data set {name!r}; choose "
                             f"{', '.join(DATASETS)} or a TSV file")  # fmt: skip
        parts = load_summaries(name)
        if "train" not in parts:
            raise LmlabError(f"{name} is a test set only (zero-shot); train on lcsts, csl, "
                             "samsum or a TSV file")  # fmt: skip
        notes = []
        if "validation" not in parts:
            idx = split_by_group(parts["train"].texts, seed, 0, CSL_VALIDATION)
            parts = {"train": _subset(parts["train"], idx["train"]),
                     "validation": _subset(parts["train"], idx["validation"]),
                     "test": parts["test"]}  # fmt: skip
            notes.append(f"validation: {CSL_VALIDATION} texts held out of the training file "
                         f"(seed {seed})")  # fmt: skip
        elif name == "lcsts":
            notes.append(f"LCSTS part II split by text, seed {SPLIT_SEED}: {HELD_OUT} test and "
                         f"{HELD_OUT} validation texts with all their summaries")  # fmt: skip
        return SummaryData(name, DATASETS[name], parts["train"], parts["validation"],
                           parts["test"], notes)  # fmt: skip
    path = spec.get("path")
    if not path:
        raise LmlabError("[task.data] needs name = 'lcsts' (or csl, samsum) or a path to a TSV")
    tc, sc = int(spec.get("text_column", 0)), int(spec.get("summary_column", 1))
    whole = read_pairs_tsv(path, tc, sc)
    lang = spec.get("lang") or guess_lang(whole.texts)
    from pathlib import Path

    fname = Path(path).name
    if spec.get("validation") or spec.get("test"):
        if not (spec.get("validation") and spec.get("test")):
            raise LmlabError("give both --validation and --test files, or neither")
        valid = read_pairs_tsv(spec["validation"], tc, sc)
        test = read_pairs_tsv(spec["test"], tc, sc)
        return SummaryData(fname, lang, whole, valid, test, [])
    n = len(set(whole.texts))
    held = min(HELD_OUT, max(1, n // 20))
    if n < 3 * held or n < 3:
        raise LmlabError(f"{path} has only {n} distinct texts; need more, or give "
                         "--validation and --test files")  # fmt: skip
    idx = split_by_group(whole.texts, seed, held, held)
    note = f"split by text, seed {seed}: {held:,} test and {held:,} validation texts"
    return SummaryData(fname, lang, _subset(whole, idx["train"]),
                       _subset(whole, idx["validation"]), _subset(whole, idx["test"]), [note])  # fmt: skip
