"""The classic recurrent language model: Embedding -> LSTM -> LSTM -> Dense + softmax.

The reference configuration is Embedding(10000, 16), LSTM(64), LSTM(64), Dense(10000);
width, depth, cell (LSTM or GRU), dropout and weight tying are configurable. It is trained
on every position of a window, and decodes step by step carrying its hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmlab.errors import LmlabError
from lmlab.models.base import LanguageModel


@dataclass
class RNNConfig:
    vocab_size: int = 10000
    embed_dim: int = 16
    hidden_size: int = 64
    n_layer: int = 2
    cell: str = "lstm"  # "lstm" | "gru"
    dropout: float = 0.0
    tie_embeddings: bool = False
    context_length: int | None = None  # training window; decoding is unbounded
    # Adaptive softmax (Grave et al. 2017): word ids below the first cutoff get the full
    # output layer, rarer words share smaller clusters. Ids must be frequency-ordered, as
    # lmlab's word tokenizer's are. E.g. [2000, 6000] for a 10k vocabulary.
    adaptive_cutoffs: list[int] | None = None
    adaptive_div: float = 4.0

    def __post_init__(self) -> None:
        if self.cell not in ("lstm", "gru"):
            raise LmlabError(f"rnn cell {self.cell!r} unknown; use 'lstm' or 'gru'")
        if self.n_layer < 1:
            raise LmlabError(f"rnn n_layer must be at least 1, got {self.n_layer}")
        if self.adaptive_cutoffs is not None:
            c = self.adaptive_cutoffs
            if not c or c != sorted(set(c)) or c[0] < 1 or c[-1] >= self.vocab_size:
                raise LmlabError(
                    f"adaptive_cutoffs must increase strictly within (0, {self.vocab_size}), got {c}"
                )
            if self.tie_embeddings:
                raise LmlabError(
                    "adaptive_cutoffs and tie_embeddings cannot be combined; choose one"
                )


class RNNState:
    """Hidden (and cell) state carried between decoding steps."""

    def __init__(self, hidden) -> None:
        self.hidden = hidden

    def detach_(self) -> None:
        """Cut the graph behind the state (truncated BPTT keeps the values, not the history)."""
        if isinstance(self.hidden, tuple):
            self.hidden = tuple(h.detach() for h in self.hidden)
        elif self.hidden is not None:
            self.hidden = self.hidden.detach()


class RNNLanguageModel(LanguageModel):
    family = "rnn"
    computes_loss = True  # forward(ids, targets=...) returns the loss (cheap with adaptive softmax)

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        rnn_cls = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            cfg.embed_dim,
            cfg.hidden_size,
            num_layers=cfg.n_layer,
            batch_first=True,
            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0,
        )
        self.drop = nn.Dropout(cfg.dropout)
        # With tying and hidden != embed size, project down before the shared output matrix.
        self.proj = (
            nn.Linear(cfg.hidden_size, cfg.embed_dim, bias=False)
            if cfg.tie_embeddings and cfg.hidden_size != cfg.embed_dim
            else None
        )
        out_dim = cfg.embed_dim if cfg.tie_embeddings else cfg.hidden_size
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        if cfg.adaptive_cutoffs:
            self.head = None
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
                out_dim, cfg.vocab_size, list(cfg.adaptive_cutoffs), div_value=cfg.adaptive_div
            )
        else:
            self.adaptive = None
            self.head = nn.Linear(out_dim, cfg.vocab_size)
            if cfg.tie_embeddings:
                self.head.weight = self.embed.weight
            nn.init.zeros_(self.head.bias)

    @property
    def context_length(self) -> int | None:
        return None  # the state carries any amount of history

    def new_state(self, batch_size: int, device="cpu") -> RNNState:
        return RNNState(None)

    def hidden_states(self, ids: torch.Tensor, state: RNNState | None = None) -> torch.Tensor:
        x = self.drop(self.embed(ids))
        out, hidden = self.rnn(x, state.hidden if state is not None else None)
        if state is not None:
            state.hidden = hidden
        out = self.drop(out)
        return self.proj(out) if self.proj is not None else out

    def forward(
        self, ids: torch.Tensor, state: RNNState | None = None, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, T, V)`` (log-probabilities with adaptive softmax), or with ``targets``
        the mean next-token loss, without the full distribution where the output allows."""
        h = self.hidden_states(ids, state)
        if self.adaptive is not None:
            flat = h.reshape(-1, h.shape[-1]).float()
            if targets is not None:
                return self.adaptive(flat, targets.reshape(-1)).loss
            return self.adaptive.log_prob(flat).view(*h.shape[:-1], -1)
        logits = self.head(h)
        if targets is not None:
            return F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1)
            )
        return logits


def _register() -> None:
    from lmlab.models import register_family

    register_family(RNNLanguageModel.family, RNNConfig, RNNLanguageModel)


_register()
