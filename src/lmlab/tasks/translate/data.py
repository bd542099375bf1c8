"""Parallel text for translation: the built-in Tatoeba Chinese-English pairs or your own files,
normalised and split so that all translations of one sentence stay in one part.

* ``tatoeba`` (``translation/cmn.txt`` under the shared data folder): ``English<TAB>Chinese
  <TAB>attribution``, 28,447 pairs. Fixed split by *English sentence*: the distinct English
  sentences are shuffled with the split seed; 1,000 go to test, 1,000 to validation, the rest
  to training, each with all its Chinese translations.
* a TSV file (``--source-column``/``--target-column``, default 0 and 1), or two aligned plain
  text files (``--data SRC --target-data TGT``, one sentence per line); split the same way by
  source sentence (test and validation 1,000 each, or 5% each of smaller files), unless
  ``--validation``/``--test`` files are given.

Chinese text is converted from traditional to simplified characters with OpenCC (``t2s``)
when the ``opencc`` package is installed (``pip install 'lmlab[translate]'``); Tatoeba's
Chinese side mixes both scripts.
"""

from __future__ import annotations

import random
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError

TATOEBA = ("translation", "cmn.txt")
BUILTINS = {"tatoeba": "Tatoeba Chinese-English pairs (cmn.txt), split by English sentence"}
LANGS = ("en", "zh")
DEFAULT_SPLIT_SEED = 1
HELD_OUT = 1000


@dataclass
class Pairs:
    src: list[str]
    tgt: list[str]

    def __len__(self) -> int:
        return len(self.src)

    def grouped(self) -> tuple[list[str], list[list[str]]]:
        """Distinct sources in order of first appearance, each with all its references."""
        refs: dict[str, list[str]] = defaultdict(list)
        for s, t in zip(self.src, self.tgt, strict=True):
            if t not in refs[s]:
                refs[s].append(t)
        return list(refs), list(refs.values())


@dataclass
class ParallelData:
    name: str
    src_lang: str
    tgt_lang: str
    train: Pairs
    validation: Pairs
    test: Pairs
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> Pairs:
        if name not in ("train", "validation", "test"):
            raise LmlabError(f"unknown split {name!r}; use train, validation or test")
        return getattr(self, name)

    def sizes(self) -> str:
        return ", ".join(f"{s} {len(self.split(s)):,}" for s in ("train", "validation", "test"))


@cache
def _t2s():
    try:
        import opencc
    except ImportError:
        return None
    return opencc.OpenCC("t2s")


def normalise(text: str, lang: str) -> str:
    """Strip; Chinese traditional -> simplified (OpenCC t2s) when opencc is installed."""
    text = " ".join(text.split())
    if lang == "zh" and (conv := _t2s()) is not None:
        text = conv.convert(text)
    return text


def normalisation_note(langs: tuple[str, ...]) -> str:
    if "zh" not in langs:
        return "whitespace collapsed"
    if _t2s() is None:
        return "Chinese NOT normalised (opencc not installed; pip install 'lmlab[translate]')"
    import opencc

    version = getattr(opencc, "__version__", "?")
    return f"Chinese traditional -> simplified with OpenCC {version} t2s; whitespace collapsed"


def parse_direction(direction: str) -> tuple[str, str]:
    parts = direction.split("-")
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise LmlabError(f"--direction {direction!r} is not SRC-TGT, e.g. zh-en or en-zh")
    return parts[0], parts[1]


def _read_lines(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise LmlabError(f"parallel data file {p} not found")
    try:
        return p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise LmlabError(f"{p} is not UTF-8 text; convert it to UTF-8") from None


def read_pairs(spec: dict[str, Any], key: str, src_lang: str, tgt_lang: str) -> Pairs:
    """Pairs from ``spec[key]`` (a TSV file, or with ``target_<key>`` two aligned files).
    Empty sides are skipped with a counted warning; misaligned files are an error."""
    path = spec[key]
    tpath = spec.get(f"target_{key}")
    if tpath:
        src_lines, tgt_lines = _read_lines(path), _read_lines(tpath)
        if len(src_lines) != len(tgt_lines):
            raise LmlabError(
                f"{path} has {len(src_lines):,} lines but {tpath} has {len(tgt_lines):,}; "
                "parallel files must be aligned line by line"
            )
        rows = list(zip(src_lines, tgt_lines, strict=True))
    else:
        sc, tc = int(spec.get("source_column", 0)), int(spec.get("target_column", 1))
        rows, short = [], 0
        for line in _read_lines(path):
            cols = line.split("\t")
            if len(cols) <= max(sc, tc):
                short += bool(line.strip())
                rows.append(("", ""))
                continue
            rows.append((cols[sc], cols[tc]))
        if short:
            raise LmlabError(
                f"{short:,} lines of {path} have fewer than {max(sc, tc) + 1} tab-separated "
                "columns; give --source-column/--target-column or aligned files with "
                "--target-data"
            )
    src, tgt, empty = [], [], 0
    for s, t in rows:
        s, t = normalise(s, src_lang), normalise(t, tgt_lang)
        if not s or not t:
            empty += 1
            continue
        src.append(s)
        tgt.append(t)
    if empty:
        warnings.warn(f"{path}: {empty:,} pairs with an empty side skipped", stacklevel=2)
    if not src:
        raise LmlabError(f"{path} holds no sentence pairs")
    return Pairs(src, tgt)


def split_by_group(keys: list[str], seed: int, n_test: int, n_valid: int) -> dict[str, list[int]]:
    """Row indices of each split, whole groups (rows with the same key) at a time: the
    sorted distinct keys are shuffled with ``seed``; the first ``n_test`` groups go to test,
    the next ``n_valid`` to validation, the rest to training."""
    groups = sorted(set(keys))
    random.Random(seed).shuffle(groups)
    part = {g: "test" for g in groups[:n_test]}
    part.update({g: "validation" for g in groups[n_test : n_test + n_valid]})
    out: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for i, k in enumerate(keys):
        out[part.get(k, "train")].append(i)
    return out


def tatoeba_rows(path: Path) -> tuple[list[str], list[str]]:
    en, zh = [], []
    for n, line in enumerate(_read_lines(path), 1):
        cols = line.split("\t")
        if len(cols) < 2:
            raise LmlabError(f"{path} line {n}: expected English<TAB>Chinese<TAB>attribution")
        en.append(normalise(cols[0], "en"))
        zh.append(normalise(cols[1], "zh"))
    return en, zh


def load_parallel(spec: dict[str, Any], direction: str, seed: int = DEFAULT_SPLIT_SEED):
    """The :class:`ParallelData` that ``spec`` (``{"name": "tatoeba"}`` or ``{"path": ...}``)
    describes, in ``direction`` (``"zh-en"``)."""
    src_lang, tgt_lang = parse_direction(direction)
    notes = [normalisation_note((src_lang, tgt_lang))]
    if spec.get("name") == "tatoeba":
        if {src_lang, tgt_lang} != {"en", "zh"}:
            raise LmlabError("the tatoeba data is Chinese-English: --direction zh-en or en-zh")
        from lmlab.tasks.datasets import _file

        en, zh = tatoeba_rows(_file(*TATOEBA))
        idx = split_by_group(en, seed, HELD_OUT, HELD_OUT)
        notes.append(f"split by English sentence, seed {seed}: {HELD_OUT:,} test and "
                     f"{HELD_OUT:,} validation sentences with all their translations")  # fmt: skip
        side = {"en": en, "zh": zh}
        parts = {k: Pairs([side[src_lang][i] for i in v], [side[tgt_lang][i] for i in v])
                 for k, v in idx.items()}  # fmt: skip
        return ParallelData("tatoeba", src_lang, tgt_lang, **parts, notes=notes)
    if not spec.get("path"):
        raise LmlabError("[task.data] needs name = 'tatoeba' or a path to parallel text")
    whole = read_pairs(spec, "path", src_lang, tgt_lang)
    name = Path(spec["path"]).name
    if spec.get("validation") or spec.get("test"):
        if not (spec.get("validation") and spec.get("test")):
            raise LmlabError("give both --validation and --test files, or neither")
        valid = read_pairs(spec, "validation", src_lang, tgt_lang)
        test = read_pairs(spec, "test", src_lang, tgt_lang)
        return ParallelData(name, src_lang, tgt_lang, whole, valid, test, notes)
    n_groups = len(set(whole.src))
    held = min(HELD_OUT, max(1, n_groups // 20))
    if n_groups < 3 * held or n_groups < 3:
        raise LmlabError(f"{spec['path']} has only {n_groups} distinct sources; need more "
                         "pairs, or give --validation and --test files")  # fmt: skip
    idx = split_by_group(whole.src, seed, held, held)
    notes.append(f"split by source sentence, seed {seed}: {held:,} test and {held:,} "
                 "validation sources with all their translations")  # fmt: skip
    parts = {k: Pairs([whole.src[i] for i in v], [whole.tgt[i] for i in v])
             for k, v in idx.items()}  # fmt: skip
    return ParallelData(name, src_lang, tgt_lang, **parts, notes=notes)


def read_wmt(path: str | Path) -> Pairs:
    """A ``translation_wmt/*.csv`` file: header ``0,1``, Chinese source, English reference."""
    import csv

    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    src, tgt = [], []
    for r in rows[1:]:
        if len(r) >= 2 and r[0].strip() and r[1].strip():
            src.append(normalise(r[0], "zh"))
            tgt.append(normalise(r[1], "en"))
    return Pairs(src, tgt)
