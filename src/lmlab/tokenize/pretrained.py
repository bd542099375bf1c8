"""The tokenizer of a pretrained model: a Hugging Face ``tokenizers`` object with its own
special tokens (BOS, EOS, chat markers), as read from a GGUF file or a ``tokenizer.json``.

Unlike lmlab's own kinds it is not trained here; it keeps the model's ids exactly. Its
``<eos>`` is the model's end-of-generation token (``<|im_end|>`` for a ChatML instruct
model), and ``end_ids`` lists every token that ends a generation.
"""

from __future__ import annotations

import json
from typing import Any

from tokenizers import Tokenizer as HFTokenizer

from lmlab.errors import LmlabError
from lmlab.tokenize.base import EOS
from lmlab.tokenize.bpe import BPETokenizer


class PretrainedTokenizer(BPETokenizer):
    """Byte-level BPE with a pretrained model's own special tokens (encoding and decoding
    are :class:`BPETokenizer`'s)."""

    kind = "hf"

    def __init__(
        self,
        hf: HFTokenizer,
        eos_token: str,
        bos_token: str | None = None,
        add_bos: bool = False,
        end_tokens: list[str] | None = None,
        gguf_pre: str | None = None,
    ) -> None:
        self.hf = hf
        hf.encode_special_tokens = True  # "<|im_end|>" in text is text (see encode)
        self.gguf_pre = gguf_pre  # llama.cpp's name for the pre-tokenizer, kept for export
        self.eos_token, self.bos_token, self.add_bos = eos_token, bos_token, add_bos
        eos = hf.token_to_id(eos_token)
        if eos is None:
            raise LmlabError(f"the tokenizer has no end-of-sequence token {eos_token!r}")
        self._eos = eos
        self._bos = hf.token_to_id(bos_token) if bos_token else None
        self.end_tokens = [t for t in (end_tokens or []) if hf.token_to_id(t) is not None]
        self._specials = {EOS: eos}
        self._texts: dict[str, int] = {}
        for added in hf.get_added_tokens_decoder().values():
            if added.special:
                self._specials[added.content] = self._texts[added.content] = hf.token_to_id(
                    added.content
                )

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._specials)

    @property
    def special_texts(self) -> dict[str, int]:
        """The model's own special strings (``<|im_start|>``...), without lmlab's ``<eos>``
        alias: a template writes the model's markers."""
        return dict(self._texts)

    @property
    def bos_id(self) -> int | None:
        return self._bos

    @property
    def end_ids(self) -> set[int]:
        """Tokens that end a generation: EOS and, e.g., ``<|endoftext|>`` of a chat model."""
        return {self._eos, *(self.hf.token_to_id(t) for t in self.end_tokens)}

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as ordinary text: a ``<|im_end|>`` in a prompt is spelled, not the
        end-of-turn id (``transformers``' ``split_special_tokens=True``). A chat template's
        markers go through :meth:`encode_with_specials`; no BOS: callers that start a
        sequence add :attr:`bos_id`."""
        return super().encode(text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hf": json.loads(self.hf.to_str()),
            "eos_token": self.eos_token,
            "bos_token": self.bos_token,
            "add_bos": self.add_bos,
            "end_tokens": self.end_tokens,
            "gguf_pre": self.gguf_pre,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainedTokenizer:
        return cls(
            HFTokenizer.from_str(json.dumps(data["hf"])),
            eos_token=data["eos_token"],
            bos_token=data.get("bos_token"),
            add_bos=bool(data.get("add_bos", False)),
            end_tokens=list(data.get("end_tokens", [])),
            gguf_pre=data.get("gguf_pre"),
        )
