"""The one tokenizer interface every model and command uses.

A tokenizer maps text to integer ids and back, lists its special tokens, and saves itself
as JSON (never a pickle). Concrete kinds: ``char``, ``word``, ``bpe``, ``hf``.

Special tokens never come from text: ``encode`` reads a literal ``<eos>`` (or
``<|im_end|>``) in a corpus, a prompt or a request as ordinary characters. They enter only
through the APIs that mean them: code that adds ``eos_id``/``bos_id`` itself, and
:meth:`Tokenizer.encode_with_specials` for text the program wrote (a chat template's role
markers), which keeps the spans of user text in it ordinary.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
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
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``, all of it ordinary text: special-token strings in it are spelled
        like any other characters, never turned into special ids."""

    @property
    def special_texts(self) -> dict[str, int]:
        """Special tokens as a program writes them in text (a chat template's markers) and
        their ids; only :meth:`encode_with_specials` reads these strings as specials."""
        return self.special_tokens

    def encode_with_specials(self, text: str, plain: Sequence[tuple[int, int]] = ()) -> list[int]:
        """Ids of ``text`` written by the program itself (a rendered chat template): its
        special-token strings become their ids, except inside the ``plain`` character spans
        (the messages' content), which stay ordinary text. The text between two specials is
        encoded as one piece, so the ids are those the model was trained with."""
        specials = self.special_texts
        if not specials:
            return self.encode(text)
        pattern = re.compile(
            "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))
        )
        cuts: list[tuple[int, int, int]] = []
        pos = 0
        for a, b in [*sorted(plain), (len(text), len(text))]:
            if a > pos:  # only the program's own text, between the plain spans
                cuts += [
                    (m.start(), m.end(), specials[m.group()])
                    for m in pattern.finditer(text, pos, a)
                ]
            pos = max(pos, b)
        ids: list[int] = []
        at = 0
        for start, end, i in cuts:
            if start > at:
                ids += self.encode(text[at:start])
            ids.append(i)
            at = end
        if at < len(text):
            ids += self.encode(text[at:])
        return ids

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
