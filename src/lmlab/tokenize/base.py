"""The one tokenizer interface every model and command uses.

A tokenizer maps text to integer ids and back, lists its special tokens, and saves itself
as JSON (never a pickle). Concrete kinds: ``char``, ``word``, ``bpe``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmlab.config import atomic_write_text
from lmlab.errors import LmlabError

EOS = "<eos>"
UNK = "<unk>"


def invalid_text() -> LmlabError:
    return LmlabError(
        "text contains an unpaired surrogate code point (not valid Unicode text); fix the input"
    )


class Tokenizer(ABC):
    """Base of all tokenizers: ``encode``/``decode``, special tokens, JSON round-trip."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def special_tokens(self) -> dict[str, int]:
        """Special token strings and their ids (always includes ``<eos>``)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: Any) -> str: ...

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; ``from_dict`` of the same class rebuilds it."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer: ...

    @property
    def eos_id(self) -> int:
        return self.special_tokens[EOS]

    @property
    def end_ids(self) -> set[int]:
        """Tokens at which generation stops (pretrained chat models have several)."""
        return {self.eos_id}

    @property
    def bos_id(self) -> int | None:
        """A token that starts every sequence, for models trained with one (else None)."""
        return None

    add_bos: bool = False  # whether prompts start with ``bos_id``

    @property
    def eos_ends_document(self) -> bool:
        """Whether ``<eos>`` marks the end of a document (where generation stops), rather
        than of a line, as in pre-tokenised one-sentence-per-line text."""
        return True

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` as an int64 array (kinds override this with a faster path)."""
        return np.asarray(self.encode(text), dtype=np.int64)

    def id_to_piece(self, i: int) -> str:
        """Human-readable text of one token (for displays of token probabilities)."""
        return self.decode([i])

    def save(self, path: str | Path) -> None:
        data = {"kind": self.kind, "format": 1, **self.to_dict()}
        atomic_write_text(path, json.dumps(data, ensure_ascii=False))
