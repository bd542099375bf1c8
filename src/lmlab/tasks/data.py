"""Labelled text from TSV, CSV or JSONL files with named text and label columns.

* TSV (``.tsv``, ``.txt``): tab-separated, no quoting (quotes are part of the text);
* CSV (``.csv``): comma-separated with the usual double-quote quoting;
* JSONL (``.jsonl``, ``.json``): one object per line.

Columns are chosen by name from a header row (``--text-column review --label-column label``)
or, for a file without a header, by 0-based index (``--text-column 0 --label-column 1``).
Without either, a header with a usual text name (``text``, ``sentence``, ``review``, ...) and
a usual label name (``label``, ``class``, ...) is found by itself.

Bad input never disappears silently: an unknown column or a malformed row is a one-line
:class:`LmlabError`; rows with an empty text or label are skipped with a counted warning
(``3 rows skipped: empty text``).
"""

from __future__ import annotations

import csv
import json
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from lmlab.errors import LmlabError

TEXT_NAMES = ("text", "sentence", "review", "content", "title", "document", "question")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "sentiment")
FORMATS = ("tsv", "csv", "jsonl")
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass
class Examples:
    """Texts and their labels (label *names*, as strings), read from ``source``."""

    texts: list[str]
    labels: list[str]
    source: str = ""
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index) -> Examples:
        idx = [int(i) for i in index]
        return Examples([self.texts[i] for i in idx], [self.labels[i] for i in idx], self.source)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for lab in self.labels:
            out[lab] = out.get(lab, 0) + 1
        return out


def guess_format(path: str | Path) -> str:
    name = str(path).lower()
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    return "tsv"


def _column(spec: str | int | None) -> str | int | None:
    if spec is None or isinstance(spec, int):
        return spec
    s = str(spec).strip()
    return int(s) if s.isdigit() else s


def _find(header: list[str], want: str | int | None, usual: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    names = usual if want is None else (str(want).lower(),)
    for n in names:
        if n in lowered:
            return lowered.index(n)
    return None


def _rows(path: Path, fmt: str):
    """(line number, list of fields) per row of a TSV/CSV file."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, encoding="utf-8-sig", newline="") as f:
        if fmt == "tsv":
            for n, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield n, line.split("\t")
        else:
            reader = csv.reader(f)
            for row in reader:
                if row and any(c.strip() for c in row):
                    yield reader.line_num, row


def _resolve_columns(
    path: Path, first: list[str], text_column, label_column
) -> tuple[int, int, bool]:
    """(text index, label index, whether the first row is a header)."""
    tc, lc = _column(text_column), _column(label_column)
    hint = (
        "name the columns with --text-column/--label-column (header names, or 0-based "
        "indexes for a file without a header)"
    )
    shown = ", ".join(repr(c[:30]) for c in first[:6])
    if isinstance(tc, int) or isinstance(lc, int):
        if not (isinstance(tc, int) and isinstance(lc, int)):
            raise LmlabError(f"{path}: give both columns as names or both as indexes; {hint}")
        for what, i in (("text", tc), ("label", lc)):
            if i >= len(first):
                raise LmlabError(
                    f"{path}: {what} column {i} does not exist; the first row has "
                    f"{len(first)} fields ({shown})"
                )
        header = first[lc].strip().lower() in LABEL_NAMES  # a header row: skip it
        return tc, lc, header
    ti, li = _find(first, tc, TEXT_NAMES), _find(first, lc, LABEL_NAMES)
    if ti is None or li is None:
        which, want = ("text", tc) if ti is None else ("label", lc)
        named = f"column named {want!r}" if want is not None else f"usual {which} column"
        raise LmlabError(f"{path}: no {named} (first row: {shown}); {hint}")
    if ti == li:
        raise LmlabError(f"{path}: text and label are the same column ({first[ti]!r}); {hint}")
    return ti, li, True


def read_examples(
    path: str | Path,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    fmt: str | None = None,
    label_map: dict[str, str] | None = None,
) -> Examples:
    """Read one labelled file. ``label_map`` renames raw labels (``{"0": "negative"}``); a
    raw label outside it is an error naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise LmlabError(f"data file {p} not found; check the path")
    fmt = fmt or guess_format(p)
    if fmt not in FORMATS:
        raise LmlabError(f"unknown data format {fmt!r}; choose one of {', '.join(FORMATS)}")
    pairs = _read_jsonl(p, text_column, label_column) if fmt == "jsonl" else None
    if pairs is None:
        pairs = _read_table(p, fmt, text_column, label_column)
    texts, labels, skipped = [], [], {}
    for n, text, label in pairs:
        text = (text or "").strip()
        label = "" if label is None else str(label).strip()
        reason = "empty text" if not text else "empty label" if not label else None
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        if label_map is not None:
            if label not in label_map:
                raise LmlabError(
                    f"{p} line {n}: unknown label {label!r}; expected one of {', '.join(label_map)}"
                )
            label = label_map[label]
        texts.append(text)
        labels.append(label)
    for reason, k in skipped.items():
        warnings.warn(f"{p.name}: {k} row{'s' if k != 1 else ''} skipped: {reason}", stacklevel=2)
    if not texts:
        raise LmlabError(f"{p}: no labelled rows with text; check the file and its columns")
    return Examples(texts, labels, str(p), skipped)


def _read_table(p: Path, fmt: str, text_column, label_column):
    rows = _rows(p, fmt)
    try:
        n0, first = next(rows)
    except StopIteration:
        raise LmlabError(f"{p} is empty; it needs a text and a label column") from None
    except UnicodeDecodeError:
        raise LmlabError(f"{p} is not UTF-8 text; convert it to UTF-8") from None
    ti, li, header = _resolve_columns(p, first, text_column, label_column)
    need = max(ti, li) + 1
    sep = "tab" if fmt == "tsv" else "comma"
    out = [] if header else [(n0, first[ti], first[li])]
    try:
        for n, row in rows:
            if len(row) < need:
                raise LmlabError(
                    f"{p} line {n}: {len(row)} field(s), expected at least {need} "
                    f"({sep}-separated, text column {ti}, label column {li})"
                )
            out.append((n, row[ti], row[li]))
    except UnicodeDecodeError:
        raise LmlabError(f"{p} is not UTF-8 text; convert it to UTF-8") from None
    except csv.Error as e:
        raise LmlabError(f"{p}: malformed CSV ({e})") from None
    return out


def _read_jsonl(p: Path, text_column, label_column):
    tk = "text" if text_column is None else str(text_column)
    lk = "label" if label_column is None else str(label_column)
    out = []
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise LmlabError(f"{p} is not UTF-8 text; convert it to UTF-8") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise LmlabError(f"{p} line {n}: not JSON ({e.msg}); one object per line") from None
        if not isinstance(rec, dict):
            raise LmlabError(f"{p} line {n}: expected a JSON object, got {type(rec).__name__}")
        if not out:
            for what, key in (("text", tk), ("label", lk)):
                if key not in rec:
                    keys = ", ".join(repr(k) for k in list(rec)[:8])
                    raise LmlabError(
                        f"{p}: no {what} field {key!r} (fields: {keys}); name it with "
                        f"--{what}-column"
                    )
        text = rec.get(tk)
        out.append((n, text if isinstance(text, str) else None, rec.get(lk)))
    return out


def language_of(texts: list[str]) -> str:
    """``zh`` if Chinese characters dominate a sample of the texts, else ``en``."""
    sample = "".join(texts[:200])
    letters = sum(c.isalpha() for c in sample)
    cjk = len(_CJK_RE.findall(sample))
    return "zh" if letters and cjk / letters > 0.3 else "en"


def label_order(labels: list[str]) -> list[str]:
    """Distinct labels, numbers in numeric order, then names alphabetically."""
    distinct = set(labels)

    def key(s: str):
        try:
            return (0, float(s), s)
        except ValueError:
            return (1, 0.0, s)

    return sorted(distinct, key=key)
