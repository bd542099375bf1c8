"""Tokenise a corpus into flat token files: ``train.bin``, ``val.bin`` and ``meta.json``.

The split is deterministic: the last ``val_fraction`` of the corpus's characters (in file
order) is validation, the rest training, as nanoGPT does for one file. Token files are raw
``uint16`` arrays when the vocabulary fits (else ``uint32``) read back through numpy
memmaps, so corpora larger than memory work. Documents are separated by ``<eos>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmlab.config import atomic_write_text
from lmlab.data.sources import Source, iter_documents
from lmlab.errors import LmlabError
from lmlab.progress import progress_bar
from lmlab.tokenize import Tokenizer, load_tokenizer, train_tokenizer


@dataclass
class DatasetMeta:
    tokenizer: str
    vocab_size: int
    dtype: str
    train_tokens: int
    val_tokens: int
    train_chars: int
    val_chars: int
    val_bytes: int
    val_fraction: float
    sources: list[str] = field(default_factory=list)

    @property
    def val_bytes_per_token(self) -> float:
        return self.val_bytes / max(1, self.val_tokens)


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def _line_chunks(chunks: Iterator[str]) -> Iterator[str]:
    """Re-cut text chunks at line ends, so no word or token straddles two chunks."""
    carry = ""
    for chunk in chunks:
        text = carry + chunk
        cut = text.rfind("\n") + 1
        if cut == 0 and len(text) < (64 << 20):
            carry = text
            continue
        if cut == 0:
            cut = len(text)
        yield text[:cut]
        carry = text[cut:]
    if carry:
        yield carry


def _all_text(sources: list[Source]) -> Iterator[str]:
    for doc in iter_documents(sources):
        yield from _line_chunks(doc)


def prepare_dataset(
    sources: list[Source],
    out_dir: str | Path,
    tokenizer: Tokenizer | None = None,
    tokenizer_kind: str = "char",
    tokenizer_options: dict[str, Any] | None = None,
    val_fraction: float = 0.1,
) -> tuple[Tokenizer, DatasetMeta]:
    """Train (or reuse) a tokenizer and write the token files of ``sources`` to ``out_dir``."""
    if not 0.0 <= val_fraction < 1.0:
        raise LmlabError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counter = _Counting(_all_text(sources))
    if tokenizer is None:
        tokenizer = train_tokenizer(tokenizer_kind, counter, **(tokenizer_options or {}))
    else:
        for _ in counter:
            pass
    total = counter.chars
    if not counter.has_text:
        names = ", ".join(str(s.path) for s in sources[:3])
        raise LmlabError(f"the corpus is empty ({names} holds no text); give it some text")
    split_at = round(total * (1.0 - val_fraction))
    dtype = token_dtype(tokenizer.vocab_size)
    eos = np.array([tokenizer.eos_id], dtype=dtype)
    counts = {"train": 0, "val": 0}
    chars = {"train": 0, "val": 0}
    val_bytes = 0
    pos = 0
    with (
        open(out / "train.bin.tmp", "wb") as ftrain,
        open(out / "val.bin.tmp", "wb") as fval,
        progress_bar(
            total=total, unit="char", unit_scale=True, desc="tokenising", leave=False, disable=None
        ) as bar,
    ):
        files = {"train": ftrain, "val": fval}

        def put(split: str, text: str) -> None:
            nonlocal val_bytes
            ids = tokenizer.encode_array(text).astype(dtype)
            ids.tofile(files[split])
            counts[split] += len(ids)
            chars[split] += len(text)
            if split == "val":
                val_bytes += len(text.encode("utf-8"))

        for d, doc in enumerate(iter_documents(sources)):
            split_of_doc = "train" if pos < split_at else "val"
            if d > 0:  # a document boundary, in the split where the new document starts
                eos.tofile(files[split_of_doc])
                counts[split_of_doc] += 1
            for text in _line_chunks(doc):
                if pos < split_at < pos + len(text):
                    k = split_at - pos
                    put("train", text[:k])
                    put("val", text[k:])
                else:
                    put("train" if pos < split_at else "val", text)
                pos += len(text)
                bar.update(len(text))
    (out / "train.bin.tmp").replace(out / "train.bin")
    (out / "val.bin.tmp").replace(out / "val.bin")
    if val_fraction > 0 and counts["val"] < 2:
        raise LmlabError(
            f"the corpus is too small for a validation split ({total} characters); add text or lower --val-fraction"
        )
    meta = DatasetMeta(
        tokenizer=tokenizer.kind,
        vocab_size=tokenizer.vocab_size,
        dtype=dtype.name,
        train_tokens=counts["train"],
        val_tokens=counts["val"],
        train_chars=chars["train"],
        val_chars=chars["val"],
        val_bytes=val_bytes,
        val_fraction=val_fraction,
        sources=[str(s.path) + (f"#{s.jsonl_field}" if s.jsonl_field else "") for s in sources],
    )
    tokenizer.save(out / "tokenizer.json")
    atomic_write_text(out / "meta.json", json.dumps(asdict(meta), indent=2, ensure_ascii=False))
    return tokenizer, meta


class _Counting:
    """Iterate texts while counting their characters (one pass feeds the tokenizer trainer)."""

    def __init__(self, it: Iterator[str]) -> None:
        self.it, self.chars, self.has_text = it, 0, False

    def __iter__(self) -> Iterator[str]:
        for t in self.it:
            self.chars += len(t)
            self.has_text = self.has_text or not t.isspace()
            yield t


@dataclass
class Dataset:
    """A prepared dataset directory, opened: token memmaps, tokenizer and metadata."""

    path: Path
    meta: DatasetMeta
    tokenizer: Tokenizer
    train: np.ndarray
    val: np.ndarray


def open_dataset(path: str | Path) -> Dataset:
    p = Path(path)
    if not (p / "meta.json").is_file():
        raise LmlabError(f"{p} is not a prepared dataset (no meta.json); run lmlab data prepare")
    try:
        meta = DatasetMeta(**json.loads((p / "meta.json").read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as e:
        raise LmlabError(f"{p / 'meta.json'} is corrupt ({e}); prepare the dataset again") from None
    tok = load_tokenizer(p / "tokenizer.json")

    def mm(name: str, n: int) -> np.ndarray:
        f = p / name
        if not f.is_file() or f.stat().st_size != n * np.dtype(meta.dtype).itemsize:
            raise LmlabError(f"{f} is missing or truncated; prepare the dataset again")
        if n == 0:
            return np.zeros(0, dtype=meta.dtype)
        return np.memmap(f, dtype=meta.dtype, mode="r", shape=(n,))

    return Dataset(p, meta, tok, mm("train.bin", meta.train_tokens), mm("val.bin", meta.val_tokens))
