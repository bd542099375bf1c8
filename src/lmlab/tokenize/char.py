"""Character-level tokenizer with byte fallback, so any Unicode text round-trips exactly.

Characters seen in training get one id each; anything else (an emoji the corpus never had)
is spelled as its UTF-8 bytes ``<0x..>``, as SentencePiece's byte fallback does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from lmlab.tokenize.base import EOS, Tokenizer, invalid_text

_N_BYTES = 256


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars: list[str], specials: tuple[str, ...] = (EOS,)) -> None:
        self.specials = list(specials)
        self.chars = list(chars)
        self._base = len(self.specials) + _N_BYTES  # ids below this: specials, then bytes
        self._stoi = {c: self._base + i for i, c in enumerate(self.chars)}
        cps = np.array([ord(c) for c in self.chars], dtype=np.int64)
        order = np.argsort(cps)
        self._sorted_cps = cps[order]
        self._sorted_ids = (self._base + order).astype(np.int64)
        self._pieces = self.specials + [f"<0x{b:02X}>" for b in range(_N_BYTES)] + self.chars

    @classmethod
    def train(cls, texts: Iterable[str], max_chars: int | None = None) -> CharTokenizer:
        """Vocabulary of the characters in ``texts`` (the most frequent ``max_chars`` if set)."""
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(t)
        chars = [c for c, _ in counts.most_common(max_chars)]
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        return self._base + len(self.chars)

    @property
    def special_tokens(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.specials)}

    def encode_array(self, text: str) -> np.ndarray:
        try:
            cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        except UnicodeEncodeError:
            raise invalid_text() from None
        if len(cps) == 0:
            return np.zeros(0, np.int64)
        if len(self._sorted_cps) == 0:
            known = np.zeros(len(cps), dtype=bool)
            ids = np.zeros(len(cps), dtype=np.int64)
        else:
            pos = np.searchsorted(self._sorted_cps, cps).clip(0, len(self._sorted_cps) - 1)
            known = self._sorted_cps[pos] == cps
            ids = self._sorted_ids[pos]
        if known.all():
            return ids
        # Byte fallback, vectorised: only the unknown characters are visited in Python.
        unknown = np.flatnonzero(~known)
        spelled = [text[i].encode("utf-8") for i in unknown.tolist()]
        counts = np.ones(len(cps), dtype=np.int64)
        counts[unknown] = [len(b) for b in spelled]
        out = np.repeat(ids, counts)
        starts = np.cumsum(counts) - counts
        n_sp = len(self.specials)
        for at, b in zip(starts[unknown].tolist(), spelled, strict=True):
            out[at : at + len(b)] = n_sp + np.frombuffer(b, dtype=np.uint8)
        return out

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def decode(self, ids: Any) -> str:
        n_sp = len(self.specials)
        parts: list[str] = []
        pending = bytearray()
        for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if n_sp <= i < self._base:
                pending.append(i - n_sp)
                continue
            if pending:
                parts.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
            if i >= self._base:
                parts.append(self.chars[i - self._base] if i - self._base < len(self.chars) else "")
            elif 0 <= i < n_sp:
                parts.append(self.specials[i])
        if pending:
            parts.append(pending.decode("utf-8", errors="replace"))
        return "".join(parts)

    def id_to_piece(self, i: int) -> str:
        return self._pieces[i]

    def to_dict(self) -> dict[str, Any]:
        return {"specials": self.specials, "chars": self.chars}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        return cls(list(data["chars"]), tuple(data["specials"]))
