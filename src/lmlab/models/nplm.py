"""Neural probabilistic language model (Bengio, Ducharme, Vincent & Jauvin, 2003).

The next word is predicted from a fixed window of the ``context`` previous words:

    x = [C(w_{t-n+1}); ...; C(w_{t-1})]        shared embedding table C, concatenated
    h = f(H x + d)                               f = tanh (the paper), ReLU or sigmoid
    y = b + U h (+ W x with direct connections)  logits over the vocabulary

``forward(ids)`` scores every position of a ``(B, T)`` sequence at once, each from its own
window (positions near the start are left-padded with ``<eos>``, which also starts every
document). The decoding state is the last ``context`` ids, so generation needs no cache.
A from-scratch numpy version with hand-written gradients is :mod:`lmlab.models.nplm_numpy`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmlab.errors import LmlabError
from lmlab.models.base import LanguageModel

ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu, "sigmoid": torch.sigmoid}


@dataclass
class NPLMConfig:
    vocab_size: int = 10000
    context: int = 4  # n - 1 previous words
    embed_dim: int = 60
    hidden_size: int = 100
    activation: str = "tanh"  # "tanh" | "relu" | "sigmoid"
    direct: bool = False  # Bengio's optional direct connections from x to the output
    dropout: float = 0.0
    pad_id: int = 0  # left padding (<eos>: a sentence start)
    context_length: int | None = None  # any length; each position sees `context` words

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise LmlabError(
                f"nplm activation {self.activation!r} unknown; use one of {', '.join(ACTIVATIONS)}"
            )
        if self.context < 1:
            raise LmlabError(f"nplm context must be at least 1 word, got {self.context}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise LmlabError("nplm pad_id must be a vocabulary id (normally <eos>)")


class NPLMState:
    """The last ``context`` token ids of each sequence."""

    def __init__(self, history: torch.Tensor) -> None:
        self.history = history  # (B, context) int64


class NPLM(LanguageModel):
    family = "nplm"

    def __init__(self, config: NPLMConfig) -> None:
        super().__init__()
        self.config = cfg = config
        in_dim = cfg.context * cfg.embed_dim
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)  # C
        self.hidden = nn.Linear(in_dim, cfg.hidden_size)  # H, d
        self.out = nn.Linear(cfg.hidden_size, cfg.vocab_size)  # U, b
        self.direct = nn.Linear(in_dim, cfg.vocab_size, bias=False) if cfg.direct else None  # W
        self.drop = nn.Dropout(cfg.dropout)
        self.act = ACTIVATIONS[cfg.activation]
        nn.init.normal_(self.embed.weight, std=0.1)
        nn.init.zeros_(self.out.bias)
        if self.direct is not None:
            nn.init.zeros_(self.direct.weight)

    @property
    def context_length(self) -> int | None:
        return None  # any length: the state carries the window

    def new_state(self, batch_size: int, device: torch.device | str = "cpu") -> NPLMState:
        pad = torch.full((batch_size, self.config.context), self.config.pad_id, dtype=torch.int64)
        return NPLMState(pad.to(device))

    def windows(self, ids: torch.Tensor, state: NPLMState | None = None) -> torch.Tensor:
        """``(B, T, context)``: the window ending at each position, padded on the left."""
        c = self.config.context
        hist = (
            state.history.to(ids.device)
            if state is not None
            else torch.full(
                (ids.shape[0], c), self.config.pad_id, dtype=torch.int64, device=ids.device
            )
        )
        x = torch.cat([hist, ids.to(torch.int64)], dim=1)  # (B, c+T)
        if state is not None:
            state.history = x[:, -c:]
        return x.unfold(1, c, 1)[:, 1:]  # (B, T, c)

    def forward(self, ids: torch.Tensor, state: NPLMState | None = None) -> torch.Tensor:
        """Logits ``(B, T, V)``: ``[:, i]`` predicts the token after ``ids[:, i]``."""
        b, t = ids.shape
        x = self.embed(self.windows(ids, state)).reshape(b, t, -1)  # (B, T, c*E)
        h = self.drop(self.act(self.hidden(x)))  # (B, T, H)
        y = self.out(h)
        if self.direct is not None:
            y = y + self.direct(x)
        return y


def _register() -> None:
    from lmlab.models import register_family

    register_family(NPLM.family, NPLMConfig, NPLM)


_register()
