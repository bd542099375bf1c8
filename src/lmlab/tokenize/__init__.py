"""Tokenizers behind one interface: ``char``, ``word`` (regex + jieba) and byte-level ``bpe``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError
from lmlab.tokenize.base import EOS, UNK, Tokenizer
from lmlab.tokenize.bpe import BPETokenizer
from lmlab.tokenize.char import CharTokenizer
from lmlab.tokenize.pretrained import PretrainedTokenizer
from lmlab.tokenize.word import WordTokenizer

KINDS: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer,
    "word": WordTokenizer,
    "bpe": BPETokenizer,
    "hf": PretrainedTokenizer,  # a pretrained model's own tokenizer (not trained here)
}

__all__ = [
    "EOS",
    "UNK",
    "KINDS",
    "Tokenizer",
    "CharTokenizer",
    "WordTokenizer",
    "BPETokenizer",
    "PretrainedTokenizer",
    "train_tokenizer",
    "load_tokenizer",
    "tokenizer_from_dict",
]


def train_tokenizer(kind: str, texts: Iterable[str], **options: Any) -> Tokenizer:
    """Learn a tokenizer of ``kind`` from ``texts``; ``options`` go to that kind's ``train``."""
    if kind not in KINDS:
        raise LmlabError(f"unknown tokenizer {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == PretrainedTokenizer.kind:
        raise LmlabError(
            "the 'hf' tokenizer comes with a pretrained model and is not trained; "
            "fine-tune that model with --init-from instead"
        )
    try:
        return KINDS[kind].train(texts, **options)  # type: ignore[attr-defined]
    except TypeError as e:
        raise LmlabError(f"bad option for the {kind} tokenizer: {e}") from e


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    kind = data.get("kind")
    if kind not in KINDS:
        raise LmlabError(f"tokenizer kind {kind!r} unknown; expected one of {', '.join(KINDS)}")
    return KINDS[kind].from_dict(data)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer saved with ``Tokenizer.save`` (JSON)."""
    p = Path(path)
    if not p.is_file():
        raise LmlabError(f"tokenizer file {p} not found; is this a run directory?")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return tokenizer_from_dict(data)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise LmlabError(
            f"tokenizer file {p} is corrupt ({e.__class__.__name__}); retrain or restore it"
        ) from e
