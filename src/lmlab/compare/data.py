"""One split for every model of a comparison: a tokenizer and train/valid/test token files.

Writes a dataset directory the trainer opens directly (``train.bin``, ``val.bin``,
``meta.json``, ``tokenizer.json``; see :mod:`lmlab.data.shards`) plus ``test.bin`` when a
test file is given. ``whitespace`` tokenisation is for pre-tokenised corpora such as Penn
Treebank (one sentence a line, ``<eos>`` after each); other kinds use lmlab's tokenizers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lmlab.config import atomic_write_text
from lmlab.data.shards import DatasetMeta, token_dtype
from lmlab.errors import LmlabError
from lmlab.models.pretokenized import encode_lines, read_text, whitespace_tokenizer
from lmlab.tokenize import Tokenizer, load_tokenizer, train_tokenizer


@dataclass
class Split:
    """Token ids of the three parts, the tokenizer, and how text was split."""

    path: Path
    tokenizer: Tokenizer
    split: str  # "whitespace" | "tokenizer"
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray | None
    valid_bytes: int


def _encode(tok: Tokenizer, text: str, split: str) -> np.ndarray:
    return encode_lines(tok, text) if split == "whitespace" else tok.encode_array(text)


def prepare_split(
    out: str | Path,
    corpus: str | Path,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    tokenizer: str = "word",
    max_vocab: int | None = None,
    val_fraction: float = 0.1,
) -> Split:
    """Tokenise ``corpus`` (and ``valid``/``test``, or the last ``val_fraction`` of the
    corpus's lines as validation) into ``out``; reuse ``out`` if it was prepared already."""
    d = Path(out)
    if (d / "meta.json").is_file() and (d / "split.json").is_file():
        return open_split(d)
    train_text = read_text(corpus)
    if valid is not None:
        valid_text = read_text(valid)
    else:
        lines = train_text.splitlines(keepends=True)
        cut = int(len(lines) * (1 - val_fraction))
        if cut < 1 or cut >= len(lines):
            raise LmlabError(
                f"{corpus} has too few lines to hold out a validation part; pass --valid"
            )
        train_text, valid_text = "".join(lines[:cut]), "".join(lines[cut:])
    test_text = read_text(test) if test is not None else None
    split = "whitespace" if tokenizer == "whitespace" else "tokenizer"
    if split == "whitespace":
        tok: Tokenizer = whitespace_tokenizer([train_text])
    else:
        opts: dict = {
            "word": {"max_vocab": max_vocab},
            "char": {"max_chars": max_vocab},
            "bpe": {"vocab_size": max_vocab or 4096},
        }.get(tokenizer, {})
        tok = train_tokenizer(tokenizer, [train_text], **opts)
    ids = {"train": _encode(tok, train_text, split), "val": _encode(tok, valid_text, split)}
    if test_text is not None:
        ids["test"] = _encode(tok, test_text, split)
    d.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tok.vocab_size)
    for name, arr in ids.items():
        tmp = d / f"{name}.bin.tmp"
        arr.astype(dtype).tofile(tmp)
        tmp.replace(d / f"{name}.bin")
    tok.save(d / "tokenizer.json")
    meta = DatasetMeta(
        tokenizer=tok.kind,
        vocab_size=tok.vocab_size,
        dtype=dtype.name,
        train_tokens=len(ids["train"]),
        val_tokens=len(ids["val"]),
        train_chars=len(train_text),
        val_chars=len(valid_text),
        val_bytes=len(valid_text.encode("utf-8")),
        val_fraction=0.0 if valid is not None else val_fraction,
        sources=[str(corpus)] + ([str(valid)] if valid else []),
    )
    atomic_write_text(d / "meta.json", json.dumps(asdict(meta), indent=2))
    info = {"split": split, "test_tokens": len(ids["test"]) if "test" in ids else None}
    atomic_write_text(d / "split.json", json.dumps(info))
    return open_split(d)


def open_split(path: str | Path) -> Split:
    d = Path(path)
    meta = DatasetMeta(**json.loads((d / "meta.json").read_text(encoding="utf-8")))
    info = json.loads((d / "split.json").read_text(encoding="utf-8"))
    tok = load_tokenizer(d / "tokenizer.json")

    def load(name: str) -> np.ndarray:
        return np.fromfile(d / f"{name}.bin", dtype=meta.dtype).astype(np.int64)

    test = load("test") if info.get("test_tokens") is not None else None
    return Split(d, tok, info["split"], load("train"), load("val"), test, meta.val_bytes)
