"""ARPA back-off files: write a model that KenLM and SRILM read, and read theirs back.

Word names come from the tokenizer (``<eos>`` is written ``</s>``, the extra sentence-start
id ``<s>``); pieces that ARPA cannot hold (whitespace, empty, duplicates) are escaped as
``<0xHH>`` bytes or ``<id:N>``. log10 values are written with 9 significant digits, enough to
give back the same float32, so KenLM scores the file exactly as lmlab does.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmlab.config import publish
from lmlab.errors import LmlabError
from lmlab.models.kneser_ney import LOG10_BOS, MAX_ORDER, NGramTables

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_WS = re.compile(r"\s")


def arpa_names(pieces: list[str], eos_id: int, unk_id: int | None) -> list[str]:
    """One ARPA word per id (plus ``<s>`` last), unique and free of whitespace."""
    names: list[str] = []
    seen: set[str] = {BOS}
    for i, p in enumerate(pieces):
        if i == eos_id:
            name = EOS
        elif i == unk_id:
            name = UNK
        elif p == "":
            name = f"<id:{i}>"
        elif _WS.search(p):
            name = "".join(f"<0x{ord(ch):02X}>" if ch.isspace() else ch for ch in p)
        else:
            name = p
        if name in seen or (name in (EOS, UNK) and i not in (eos_id, unk_id)):
            name = f"<id:{i}>"
        seen.add(name)
        names.append(name)
    names.append(BOS)
    return names


def _fmt(x: np.ndarray) -> list[str]:
    return [f"{v:.9g}" for v in x.tolist()]


def ngram_words(tables: NGramTables) -> list[np.ndarray]:
    """Per order k, the ``(n_k, k)`` word ids of every n-gram, in table order."""
    w = tables.vocab_size + 1
    out = [tables.keys[0].reshape(-1, 1)]
    for k in range(1, tables.order):
        key = tables.keys[k]
        out.append(np.concatenate([out[k - 1][key // w], (key % w).reshape(-1, 1)], axis=1))
    return out


def write_arpa(tables: NGramTables, names: list[str], path: str | Path) -> None:
    """Write ``tables`` as an ARPA file at ``path`` (atomically: temp file, then rename)."""
    if len(names) != tables.vocab_size + 1:
        raise LmlabError("ARPA export needs one name per vocabulary id plus <s>")
    name_arr = np.asarray(names, dtype=object)
    words = ngram_words(tables)
    buf = io.StringIO()
    buf.write("\n\\data\\\n")
    for k in range(tables.order):
        buf.write(f"ngram {k + 1}={len(tables.keys[k])}\n")
    for k in range(tables.order):
        buf.write(f"\n\\{k + 1}-grams:\n")
        text = name_arr[words[k][:, 0]]
        for j in range(1, k + 1):
            text = text + " " + name_arr[words[k][:, j]]
        logp = tables.logp[k]
        cols = [_fmt(logp), text.tolist()]
        if k < tables.order - 1:
            cols.append(_fmt(tables.bows[k]))
        buf.write("\n".join("\t".join(row) for row in zip(*cols, strict=True)))
        buf.write("\n")
    buf.write("\n\\end\\\n")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(buf.getvalue())
        publish(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _bad(path: Path, what: str) -> LmlabError:
    return LmlabError(f"ARPA file {path} is malformed: {what}; re-export it or check the file")


@dataclass
class ArpaOrder:
    """The n-grams of one order as read: word columns, log10 probs and log10 backoffs."""

    words: list[list[str]]  # k columns of n strings
    logp: np.ndarray
    bows: np.ndarray


def _parse_section(lines: list[str], k: int, first_line: int, path: Path) -> ArpaOrder:
    """Vectorised parse of one ``\\k-grams:`` section (C-level maps, no per-field loop)."""
    # Token counts per line (transient lists: no garbage-collector storm), then one flat
    # list of strings for the whole section.
    lens = np.fromiter(map(len, map(str.split, lines)), dtype=np.int64, count=len(lines))
    bad = np.flatnonzero((lens != k + 1) & (lens != k + 2))
    if bad.size:
        j = int(bad[0])
        if not lines[j].strip():
            raise _bad(path, f"the {k}-grams section has fewer lines than \\data\\ says")
        raise _bad(path, f"line {first_line + j + 1} should hold a {k}-gram: {lines[j]!r}")
    if lens.size and not np.all(lens == lens[0]):  # some lines without a backoff: add 0
        lines = [
            ln if n == k + 2 else ln + "\t0" for ln, n in zip(lines, lens.tolist(), strict=True)
        ]
    width = int(lens[0]) if lens.size and np.all(lens == lens[0]) else k + 2
    flat = "\n".join(lines).split()
    try:
        logp = np.array(flat[0::width], dtype=np.float64).astype(np.float32)
        bows = (
            np.array(flat[k + 1 :: width], dtype=np.float64).astype(np.float32)
            if width == k + 2
            else np.zeros(len(lines), dtype=np.float32)
        )
    except ValueError as e:
        raise _bad(path, f"a {k}-gram line has a non-number ({e})") from None
    return ArpaOrder([flat[j::width] for j in range(1, k + 1)], logp, bows)


def read_arpa(path: str | Path) -> list[ArpaOrder]:
    """Parse an ARPA file into its n-grams, order by order."""
    p = Path(path)
    if not p.is_file():
        raise LmlabError(f"ARPA file {p} not found; check the path")
    try:
        lines = p.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise LmlabError(f"ARPA file {p} is not UTF-8 text; is it a binary KenLM model?") from e
    i = 0
    while i < len(lines) and lines[i].strip() != "\\data\\":
        i += 1
    if i == len(lines):
        raise _bad(p, "no \\data\\ header")
    sizes: list[int] = []
    i += 1
    while i < len(lines) and lines[i].strip().startswith("ngram "):
        m = re.fullmatch(r"ngram\s+(\d+)\s*=\s*(\d+)", lines[i].strip())
        if not m or int(m.group(1)) != len(sizes) + 1:
            raise _bad(p, f"line {i + 1} {lines[i]!r}")
        sizes.append(int(m.group(2)))
        i += 1
    if not 1 <= len(sizes) <= MAX_ORDER:
        raise _bad(p, f"{len(sizes)} orders (lmlab reads 1 to {MAX_ORDER})")
    orders: list[ArpaOrder] = []
    for k in range(1, len(sizes) + 1):
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i == len(lines) or lines[i].strip() != f"\\{k}-grams:":
            raise _bad(p, f"missing \\{k}-grams: section")
        i += 1
        if i + sizes[k - 1] > len(lines):
            raise _bad(p, f"file ends inside the {k}-grams")
        orders.append(_parse_section(lines[i : i + sizes[k - 1]], k, i, p))
        i += sizes[k - 1]
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines) or lines[i].strip() != "\\end\\":
        raise _bad(p, "counts in \\data\\ disagree with the sections, or \\end\\ is missing")
    return orders


def tables_from_arpa(
    orders: list[ArpaOrder],
    word_ids: dict[str, int],
    vocab_size: int,
    path: str | Path = "ARPA file",
) -> NGramTables:
    """Tables over ``vocab_size`` ids from parsed ARPA entries (``word_ids`` maps names;
    ``<s>`` gets id ``vocab_size``). Every n-gram's context must itself be listed."""
    w = vocab_size + 1
    p = Path(path)
    logp1 = np.full(w, LOG10_BOS, dtype=np.float32)
    bow1 = np.zeros(w, dtype=np.float32)
    keys, logp, bows = [np.arange(w, dtype=np.int64)], [logp1], [bow1]
    for k, o in enumerate(orders, start=1):
        n = len(o.logp)
        try:
            ids = np.stack(
                [
                    np.fromiter(map(word_ids.__getitem__, col), dtype=np.int64, count=n)
                    for col in o.words
                ],
                axis=1,
            ).reshape(n, k)
        except KeyError as e:
            raise _bad(p, f"word {e.args[0]!r} in the {k}-grams is not in the vocabulary") from None
        if k == 1:
            logp1[ids[:, 0]] = o.logp
            bow1[ids[:, 0]] = o.bows
            logp1[vocab_size] = LOG10_BOS
            continue
        ctx = ids[:, 0]
        for j in range(1, k - 1):
            ctx = _find(keys[j], ctx * w + ids[:, j])
        if np.any(ctx < 0):
            bad = [col[int(np.flatnonzero(ctx < 0)[0])] for col in o.words]
            raise _bad(p, f"the context of {' '.join(bad)!r} is not listed one order below")
        key = ctx * w + ids[:, k - 1]
        order = np.argsort(key, kind="stable")
        key = key[order]
        if np.any(key[1:] == key[:-1]):
            raise _bad(p, f"a {k}-gram is listed twice")
        keys.append(key)
        logp.append(o.logp[order])
        bows.append(o.bows[order])
    n_orders = len(orders)
    return NGramTables(vocab_size, keys, logp, bows[: n_orders - 1], np.zeros((n_orders, 3)))


def _find(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(keys, query)
    safe = np.minimum(idx, len(keys) - 1)
    return np.where((query >= 0) & (keys[safe] == query), safe, -1)
