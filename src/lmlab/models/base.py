"""The one model interface shared by every family (n-gram, NPLM, RNN, Transformer).

Every model is a ``torch.nn.Module`` with:

* ``config``: a dataclass; ``type(config)(**asdict(config))`` rebuilds the same model;
* ``forward(ids, state=None) -> logits``: ids ``(B, T)`` int64 -> logits ``(B, T, V)``.
  With a decoding ``state`` from ``new_state(B)``, the call continues from where the state
  left off (KV cache, LSTM hidden state, n-gram history) and advances it in place;
* ``context_length``: the longest sequence ``forward`` accepts (None: unbounded);
* ``num_params()``.

Generation, evaluation, serving and training see models only through this interface.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class LanguageModel(nn.Module):
    """Base class: parameter counting and the decoding-state hook."""

    family: ClassVar[str]
    config: Any
    # True if ``forward(ids, targets=y)`` returns the mean loss itself (e.g. an adaptive
    # softmax that never builds the full distribution); else the trainer applies
    # cross-entropy to the logits.
    computes_loss: ClassVar[bool] = False

    @property
    def context_length(self) -> int | None:
        return getattr(self.config, "context_length", None)

    def new_state(self, batch_size: int, device: torch.device | str = "cpu") -> Any:
        """A fresh incremental-decoding state for ``batch_size`` sequences."""
        raise NotImplementedError

    def num_params(self, trainable_only: bool = False) -> int:
        """Parameter count (tied weights counted once)."""
        seen: set[int] = set()
        n = 0
        for p in self.parameters():
            if id(p) in seen or (trainable_only and not p.requires_grad):
                continue
            seen.add(id(p))
            n += p.numel()
        return n

    def tensors_for_save(self) -> dict[str, torch.Tensor]:
        """Everything to write to ``model.safetensors``; a tied weight is stored once."""
        out: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        for k, v in self.state_dict(keep_vars=True).items():
            if id(v) in seen:
                continue
            seen.add(id(v))
            out[k] = v.detach().contiguous()
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`tensors_for_save`; families whose table sizes are not in the
        config (n-gram) override this to adopt the loaded shapes."""
        missing, unexpected = self.load_state_dict(tensors, strict=False)
        tied = set(self.state_dict(keep_vars=True)) - set(self.tensors_for_save())
        missing = [k for k in missing if k not in tied]
        if missing or unexpected:
            raise RuntimeError(
                f"missing tensors {missing[:3]}, unexpected tensors {unexpected[:3]}"
            )

    def forward(self, ids: torch.Tensor, state: Any = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError
