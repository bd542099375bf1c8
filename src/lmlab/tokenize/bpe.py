"""Byte-level BPE (as in GPT-2), trained and run by Hugging Face ``tokenizers``.

Byte-level pre-tokenisation means every string, Chinese and emoji included, round-trips.
``encode`` reads special-token strings as ordinary text (``tokenizers``'
``encode_special_tokens``); see :meth:`Tokenizer.encode_with_specials` for the way in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from lmlab.tokenize.base import EOS, Tokenizer, invalid_text


def _cut_point(text: str, at: int) -> int:
    """First index >= ``at`` just after a newline that a non-space character follows."""
    while at < len(text):
        nl = text.find("\n", at - 1)
        if nl == -1 or nl + 1 >= len(text):
            return len(text)
        if not text[nl + 1].isspace():
            return nl + 1
        at = nl + 2
    return len(text)


class BPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, hf: HFTokenizer) -> None:
        self.hf = hf
        hf.encode_special_tokens = True  # "<eos>" in text is text, not the special id
        self._specials = {EOS: hf.token_to_id(EOS)}

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2
    ) -> BPETokenizer:
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._specials)

    def encode(self, text: str) -> list[int]:
        try:
            return self.hf.encode(text, add_special_tokens=False).ids
        except TypeError:
            raise invalid_text() from None

    def encode_array(self, text: str) -> np.ndarray:
        """Long texts are cut after newlines that precede a non-space character (where the
        byte-level pre-tokeniser splits anyway, so the ids are identical) and encoded in
        parallel by ``tokenizers``."""
        if len(text) < (1 << 16):
            return np.asarray(self.encode(text), dtype=np.int64)
        pieces, start = [], 0
        while start < len(text):
            cut = _cut_point(text, start + (1 << 16))
            pieces.append(text[start:cut])
            start = cut
        try:
            ids = self.encode_batch(pieces)
        except TypeError:
            raise invalid_text() from None
        return np.concatenate([np.asarray(i, dtype=np.int64) for i in ids])

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Any) -> str:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1).tolist()
        return self.hf.decode(ids, skip_special_tokens=False)

    def id_to_piece(self, i: int) -> str:
        return self.decode([i])

    def to_dict(self) -> dict[str, Any]:
        return {"hf": json.loads(self.hf.to_str())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        return cls(HFTokenizer.from_str(json.dumps(data["hf"])))
