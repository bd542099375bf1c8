"""Attention-based recurrent seq2seq: the historical rung before the Transformer.

A bidirectional GRU reads the source; a GRU decoder, started from a projection of the
encoder's mean state, reads the target; at each target position additive attention
(Bahdanau et al. 2015: ``v . tanh(W_q h_t + W_k m_s)``) over the encoder states gives a
context vector, and ``tanh(W_o [h_t; c_t])`` predicts the next token. The attention follows
the decoder's GRU (as in Luong et al. 2015) rather than feeding into it, so teacher-forced
training runs the decoder GRU over the whole target at once.

Same decoding interface as :class:`lmlab.models.encoder_decoder.EncoderDecoder`:
``start(src, src_mask)`` then ``step(tgt, state)``; ``state.select(rows)`` for beam search.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lmlab.errors import LmlabError


@dataclass
class Seq2SeqRNNConfig:
    src_vocab_size: int = 8000
    tgt_vocab_size: int = 8000
    embed_dim: int = 256
    hidden: int = 512  # decoder state; the encoder has hidden/2 per direction
    n_layer: int = 1
    attn_dim: int = 256
    dropout: float = 0.2
    context_length: int = 128
    tie_output: bool = True  # output layer = target embeddings (W_o maps to embed_dim)

    def __post_init__(self) -> None:
        if self.hidden % 2:
            raise LmlabError(f"seq2seq_rnn hidden size must be even, got {self.hidden}")
        if self.n_layer < 1:
            raise LmlabError("seq2seq_rnn needs at least one layer")


@dataclass
class RNNState:
    memory: torch.Tensor  # (B, S, H) encoder states
    keys: torch.Tensor  # (B, S, A) their attention projections
    mask: torch.Tensor  # (B, S) True at real tokens
    h: torch.Tensor  # (L, B, H) decoder GRU state
    pos: int = 0

    def select(self, rows: torch.Tensor) -> RNNState:
        return RNNState(
            self.memory[rows], self.keys[rows], self.mask[rows], self.h[:, rows], self.pos
        )


class Seq2SeqRNN(nn.Module):
    family = "seq2seq_rnn"

    def __init__(self, config: Seq2SeqRNNConfig) -> None:
        super().__init__()
        self.config = c = config
        self.src_emb = nn.Embedding(c.src_vocab_size, c.embed_dim)
        self.tgt_emb = nn.Embedding(c.tgt_vocab_size, c.embed_dim)
        self.encoder = nn.GRU(
            c.embed_dim, c.hidden // 2, c.n_layer, batch_first=True, bidirectional=True,
            dropout=c.dropout if c.n_layer > 1 else 0.0,
        )  # fmt: skip
        self.bridge = nn.Linear(c.hidden, c.n_layer * c.hidden)
        self.decoder = nn.GRU(
            c.embed_dim, c.hidden, c.n_layer, batch_first=True,
            dropout=c.dropout if c.n_layer > 1 else 0.0,
        )  # fmt: skip
        self.w_q = nn.Linear(c.hidden, c.attn_dim, bias=False)
        self.w_k = nn.Linear(c.hidden, c.attn_dim, bias=True)
        self.v = nn.Linear(c.attn_dim, 1, bias=False)
        self.w_o = nn.Linear(2 * c.hidden, c.embed_dim if c.tie_output else c.hidden)
        self.head = nn.Linear(c.embed_dim if c.tie_output else c.hidden, c.tgt_vocab_size)
        if c.tie_output:
            self.head.weight = self.tgt_emb.weight
        self.drop = nn.Dropout(c.dropout)

    @property
    def context_length(self) -> int:
        return self.config.context_length

    def num_params(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    def tensors_for_save(self) -> dict[str, torch.Tensor]:
        out, seen = {}, set()
        for k, v in self.state_dict(keep_vars=True).items():
            if id(v) not in seen:
                seen.add(id(v))
                out[k] = v.detach().contiguous()
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(tensors, strict=False)
        tied = set(self.state_dict(keep_vars=True)) - set(self.tensors_for_save())
        missing = [k for k in missing if k not in tied]
        if missing or unexpected:
            raise RuntimeError(f"missing tensors {missing[:3]}, unexpected {unexpected[:3]}")

    def start(self, src: torch.Tensor, src_mask: torch.Tensor) -> RNNState:
        """Run the encoder; the decoder's first state comes from its masked mean."""
        if src.shape[1] > self.config.context_length:
            raise LmlabError(
                f"source of {src.shape[1]} tokens exceeds the context length "
                f"{self.config.context_length}"
            )
        lengths = src_mask.sum(1).clamp(min=1).cpu()
        x = self.drop(self.src_emb(src))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        m = src_mask.unsqueeze(-1).to(memory.dtype)
        mean = (memory * m).sum(1) / m.sum(1).clamp(min=1)
        B, c = src.shape[0], self.config
        h = torch.tanh(self.bridge(mean)).view(B, c.n_layer, c.hidden).transpose(0, 1)
        return RNNState(memory, self.w_k(memory), src_mask, h.contiguous())

    def _weights(self, dec: torch.Tensor, state: RNNState) -> torch.Tensor:
        # additive scores (B, T, S): v . tanh(W_q h_t + W_k m_s)
        e = self.v(torch.tanh(self.w_q(dec)[:, :, None, :] + state.keys[:, None])).squeeze(-1)
        e = e.float().masked_fill(~state.mask[:, None, :], float("-inf"))
        return F.softmax(e, dim=-1)

    def _attend_out(self, dec: torch.Tensor, state: RNNState) -> torch.Tensor:
        a = self._weights(dec, state).to(state.memory.dtype)
        ctx = torch.bmm(a, state.memory)  # (B, T, H)
        out = torch.tanh(self.w_o(torch.cat([dec, ctx], dim=-1)))
        return self.head(self.drop(out))

    def step(self, tgt: torch.Tensor, state: RNNState) -> torch.Tensor:
        """Logits ``(B, T, V)`` for ``tgt`` ``(B, T)`` after the tokens already in ``state``."""
        x = self.drop(self.tgt_emb(tgt))
        dec, h = self.decoder(x, state.h.to(x.dtype))
        state.h, state.pos = h, state.pos + tgt.shape[1]
        return self._attend_out(self.drop(dec), state)

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced logits ``(B, T, V)`` (``tgt_in`` starts with the start token)."""
        return self.step(tgt_in, self.start(src, src_mask))

    @torch.no_grad()
    def cross_attention(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor, layer: int = -1
    ) -> torch.Tensor:
        """Attention weights ``(B, 1, T, S)`` when the decoder reads ``tgt_in``."""
        state = self.start(src, src_mask)
        dec, _ = self.decoder(self.tgt_emb(tgt_in), state.h)
        return self._weights(dec, state)[:, None]
