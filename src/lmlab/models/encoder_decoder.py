"""Encoder-decoder Transformer (Vaswani et al. 2017) built from lmlab's decoder blocks.

The same parts as :mod:`lmlab.models.transformer`, pre-norm throughout: ``block="gpt2"``
(LayerNorm, GELU MLP, learned positions) or ``block="llama"`` (RMSNorm, SwiGLU, RoPE). The
encoder's self-attention sees every unpadded source token; each decoder block adds
cross-attention to the encoder's output between its causal self-attention and its MLP.

Decoding goes through :meth:`EncoderDecoder.start` (encode once, precompute every layer's
cross-attention keys and values) and :meth:`EncoderDecoder.step` (new target tokens in,
logits out, the self-attention KV cache grown in place); :class:`DecoderState.select`
reorders the rows for beam search. :mod:`lmlab.generate.beam` decodes any model with this
interface (also :class:`lmlab.models.seq2seq_rnn.Seq2SeqRNN`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lmlab.errors import LmlabError
from lmlab.models.transformer import (
    MLP,
    RMSNorm,
    TransformerConfig,
    _apply_rope,
    _rope_tables,
)


@dataclass
class EncoderDecoderConfig:
    src_vocab_size: int = 8000
    tgt_vocab_size: int = 8000
    d_model: int = 256
    n_head: int = 4
    n_enc_layer: int = 3
    n_dec_layer: int = 3
    d_ff: int | None = None  # None: 4*d (gpt2) or 8/3*d rounded to 64 (llama)
    block: str = "gpt2"  # "gpt2" | "llama", as in TransformerConfig
    dropout: float = 0.1
    context_length: int = 128  # longest source and longest target, in tokens
    shared_embeddings: bool = False  # one table for source and target (a shared vocabulary)
    tie_output: bool = True  # the output layer is the target embedding table
    norm_eps: float = 1e-5
    # Vaswani et al.'s token embeddings: initialised N(0, 1/d) and multiplied by sqrt(d), with
    # Xavier-uniform linear layers (fairseq's scheme). False: GPT-2's N(0, 0.02) everywhere,
    # which left cross-attention unused for the first thousands of steps (runs saved before
    # this field have it False).
    scale_embeddings: bool = True
    # A pointer-generator output (See et al. 2017): a gate mixes the vocabulary distribution
    # with a copy distribution, an attention over the source tokens, so a word of the source
    # can be written out whether or not the decoder learned to generate it. Needs one
    # vocabulary for source and target (summarisation); off for translation.
    copy: bool = False

    def __post_init__(self) -> None:
        if self.shared_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise LmlabError("shared_embeddings needs one vocabulary for source and target")
        if self.copy and self.src_vocab_size != self.tgt_vocab_size:
            raise LmlabError("model.copy needs one vocabulary for source and target")
        if min(self.n_enc_layer, self.n_dec_layer) < 1:
            raise LmlabError("an encoder-decoder needs at least one encoder and decoder layer")
        self.block_config()  # checks d_model, heads and block

    def block_config(self) -> TransformerConfig:
        """The decoder-only config whose blocks (norms, MLP, RoPE) this model reuses."""
        return TransformerConfig(
            vocab_size=self.tgt_vocab_size, context_length=self.context_length,
            n_layer=max(self.n_enc_layer, self.n_dec_layer), n_head=self.n_head,
            d_model=self.d_model, d_ff=self.d_ff, block=self.block, dropout=self.dropout,
            norm_eps=self.norm_eps,
        )  # fmt: skip


def _norm(cfg: TransformerConfig) -> nn.Module:
    if cfg.block == "llama":
        return RMSNorm(cfg.d_model, cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.use_bias)


def _sdpa(q, k, v, mask=None, is_causal=False, dropout=0.0) -> torch.Tensor:
    """Attention in float32 on CPU under autocast (PyTorch's bf16 CPU attention is slower),
    as :class:`lmlab.models.transformer.Attention` does."""
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=mask, is_causal=is_causal,
                dropout_p=dropout,
            )  # fmt: skip
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout
    )


class SelfAttention(nn.Module):
    """Multi-head self-attention: bidirectional with a padding mask (encoder) or causal with
    an optional KV cache (decoder)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_head, self.hd, self.dropout = cfg.n_head, cfg.head_dim, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.use_bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.use_bias)

    def forward(self, x, rope, mask=None, causal=False, cache: list | None = None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.hd).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = _apply_rope(q, *rope), _apply_rope(k, *rope)
        is_causal = causal
        if cache is not None:  # [k, v] of the tokens so far, grown here
            if cache[0] is not None:
                k, v = (
                    torch.cat([cache[0], k.to(cache[0].dtype)], 2),
                    torch.cat([cache[1], v.to(cache[1].dtype)], 2),
                )
                if T > 1:  # a chunk after cached tokens: query i sees keys up to p + i
                    p = k.shape[2] - T
                    mask = torch.ones(T, p + T, dtype=torch.bool, device=x.device).tril(p)
                is_causal = False
            cache[0], cache[1] = k, v
            is_causal = is_causal and T > 1
        drop = self.dropout if self.training else 0.0
        y = _sdpa(q, k, v, mask, is_causal, drop).to(x.dtype)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class CrossAttention(nn.Module):
    """Decoder queries attend to the encoder's output (keys/values computed once)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_head, self.hd, self.dropout = cfg.n_head, cfg.head_dim, cfg.dropout
        self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.use_bias)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model, bias=cfg.use_bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.use_bias)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, S, _ = memory.shape
        k, v = self.kv(memory).view(B, S, 2, self.n_head, self.hd).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x, kv, mem_mask) -> torch.Tensor:
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_head, self.hd).transpose(1, 2)
        drop = self.dropout if self.training else 0.0
        y = _sdpa(q, kv[0], kv[1], mem_mask, False, drop).to(x.dtype)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class CopyHead(nn.Module):
    """The pointer-generator output: ``p = g * softmax(logits) + (1 - g) * copy``, where
    ``copy`` puts a single-head attention over the encoder's output on the source tokens'
    ids and ``g = sigmoid(w . [h; context])``. Returns ``log p``: log-probabilities, which
    softmax, log-softmax and cross-entropy leave unchanged, so the model's output can be
    used wherever logits are."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(2 * d, 1)

    def memory(self, memory: torch.Tensor, src: torch.Tensor) -> tuple:
        """What decoding keeps of the source: copy keys, encoder output, token ids."""
        return self.k(memory), memory, src

    def forward(self, h, logits, mem, mem_mask) -> torch.Tensor:
        keys, memory, src = mem
        with torch.autocast(h.device.type, enabled=False):
            h, keys, memory = h.float(), keys.float(), memory.float()
            e = (self.q(h) @ keys.transpose(1, 2)) / math.sqrt(h.shape[-1])  # (B, T, S)
            a = e.masked_fill(~mem_mask[:, 0], float("-inf")).softmax(-1)
            g = torch.sigmoid(self.gate(torch.cat([h, a @ memory], -1)))  # (B, T, 1)
            p = g * logits.float().softmax(-1)
            B, T, S = a.shape
            p = p.scatter_add(2, src[:, None, :].expand(B, T, S), (1 - g) * a)
            return torch.log(p + 1e-9)


class EncoderBlock(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1, self.attn, self.ln2, self.mlp = (
            _norm(cfg),
            SelfAttention(cfg),
            _norm(cfg),
            MLP(cfg),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, rope, mask):
        x = x + self.drop(self.attn(self.ln1(x), rope, mask=mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class DecoderBlock(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1, self.attn = _norm(cfg), SelfAttention(cfg)
        self.ln2, self.cross = _norm(cfg), CrossAttention(cfg)
        self.ln3, self.mlp = _norm(cfg), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, rope, mem_kv, mem_mask, cache=None):
        x = x + self.drop(self.attn(self.ln1(x), rope, causal=True, cache=cache))
        x = x + self.drop(self.cross(self.ln2(x), mem_kv, mem_mask))
        return x + self.drop(self.mlp(self.ln3(x)))


@dataclass
class DecoderState:
    """What decoding carries from step to step: the cross-attention keys/values of every
    layer, the source mask, and the self-attention cache ``[k, v]`` per layer."""

    mem_kv: list[tuple[torch.Tensor, torch.Tensor]]
    mem_mask: torch.Tensor  # (B, 1, 1, S) bool, True where a source token is
    cache: list[list] = field(default_factory=list)
    pos: int = 0  # target tokens already decoded
    copy: tuple | None = None  # CopyHead.memory's (keys, encoder output, source ids)

    def select(self, rows: torch.Tensor) -> DecoderState:
        """The state of rows ``rows`` (repeat or reorder hypotheses in beam search)."""
        return DecoderState(
            [(k[rows], v[rows]) for k, v in self.mem_kv],
            self.mem_mask[rows],
            [[None if t is None else t[rows] for t in c] for c in self.cache],
            self.pos,
            None if self.copy is None else tuple(t[rows] for t in self.copy),
        )


class EncoderDecoder(nn.Module):
    family = "encoder_decoder"

    def __init__(self, config: EncoderDecoderConfig) -> None:
        super().__init__()
        self.config = config
        bc = self.bcfg = config.block_config()
        self.src_emb = nn.Embedding(config.src_vocab_size, bc.d_model)
        self.tgt_emb = (
            self.src_emb
            if config.shared_embeddings
            else nn.Embedding(config.tgt_vocab_size, bc.d_model)
        )
        if bc.block == "gpt2":
            self.src_pos = nn.Embedding(config.context_length, bc.d_model)
            self.tgt_pos = nn.Embedding(config.context_length, bc.d_model)
        else:
            self.src_pos = self.tgt_pos = None
            cos, sin = _rope_tables(bc)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(bc.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(bc) for _ in range(config.n_enc_layer))
        self.decoder = nn.ModuleList(DecoderBlock(bc) for _ in range(config.n_dec_layer))
        self.enc_ln, self.dec_ln = _norm(bc), _norm(bc)
        self.head = nn.Linear(bc.d_model, config.tgt_vocab_size, bias=False)
        self.copy_head = CopyHead(bc.d_model) if config.copy else None
        self.embed_scale = math.sqrt(bc.d_model) if config.scale_embeddings else 1.0
        self._init_parameters()
        if config.tie_output:
            self.head.weight = self.tgt_emb.weight

    def _init_parameters(self) -> None:
        """Vaswani/fairseq initialisation (``scale_embeddings``) or GPT-2's. On Tatoeba zh->en
        (d 256, 3+3 layers, 800 steps of 96 pairs) the first reached validation loss 2.76 and
        greedy BLEU 16.0, GPT-2's 3.52 and 1.5 with translations that ignored the source;
        Xavier linears alone gave 3.30, scaled embeddings alone 3.62. Learned positions stay
        at N(0, 0.02): at unit scale beside the tokens they reached 2.97 (BLEU 11.9)."""
        vaswani = self.config.scale_embeddings
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                if vaswani:
                    nn.init.xavier_uniform_(m.weight)
                else:
                    nn.init.normal_(m.weight, mean=0.0, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                token = name in ("src_emb", "tgt_emb")
                std = self.bcfg.d_model**-0.5 if vaswani and token else 0.02
                nn.init.normal_(m.weight, mean=0.0, std=std)
        if not vaswani:  # GPT-2: residual projections scaled by depth
            n = self.config.n_enc_layer + self.config.n_dec_layer
            for name, p in self.named_parameters():
                if name.endswith("proj.weight"):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n))

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

    def _embed(self, ids, table, pos_table, start: int):
        T = ids.shape[1]
        if start + T > self.config.context_length:
            raise LmlabError(
                f"sequence of {start + T} tokens exceeds the context length "
                f"{self.config.context_length}"
            )
        x = table(ids)
        if self.embed_scale != 1.0:
            x = x * self.embed_scale
        rope = None
        if pos_table is not None:
            x = x + pos_table.weight[start : start + T]
        else:
            rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T])
        return self.drop(x), rope

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """Encoder output ``(B, S, d)``; ``src_mask`` ``(B, S)`` is True at real tokens."""
        x, rope = self._embed(src, self.src_emb, self.src_pos, 0)
        mask = src_mask[:, None, None, :]
        for block in self.encoder:
            x = block(x, rope, mask)
        return self.enc_ln(x)

    def start(self, src: torch.Tensor, src_mask: torch.Tensor) -> DecoderState:
        """Encode the source once; the state that :meth:`step` continues from."""
        memory = self.encode(src, src_mask)
        kv = [b.cross.memory_kv(memory) for b in self.decoder]
        copy = None if self.copy_head is None else self.copy_head.memory(memory, src)
        return DecoderState(
            kv, src_mask[:, None, None, :], [[None, None] for _ in self.decoder], copy=copy
        )

    def _output(self, x, copy, mem_mask) -> torch.Tensor:
        h = self.dec_ln(x)
        logits = self.head(h)
        if self.copy_head is None:
            return logits
        return self.copy_head(h, logits, copy, mem_mask)

    def decoder_states(self, tgt: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """The last decoder block's output ``(B, T, d)`` for target tokens ``tgt`` ``(B, T)``
        following those already in ``state`` (advanced in place), before the final norm."""
        x, rope = self._embed(tgt, self.tgt_emb, self.tgt_pos, state.pos)
        for i, block in enumerate(self.decoder):
            x = block(x, rope, state.mem_kv[i], state.mem_mask, state.cache[i])
        state.pos += tgt.shape[1]
        return x

    def step(self, tgt: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """Logits ``(B, T, V)`` (log-probabilities with ``copy``) of target tokens ``tgt``
        ``(B, T)`` following those already in ``state`` (advanced in place)."""
        return self._output(self.decoder_states(tgt, state), state.copy, state.mem_mask)

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced logits ``(B, T, V)`` (log-probabilities with ``copy``): ``tgt_in``
        is the target shifted right (it starts with the start token)."""
        memory = self.encode(src, src_mask)
        x, rope = self._embed(tgt_in, self.tgt_emb, self.tgt_pos, 0)
        mem_mask = src_mask[:, None, None, :]
        for block in self.decoder:
            x = block(x, rope, block.cross.memory_kv(memory), mem_mask)
        copy = None if self.copy_head is None else self.copy_head.memory(memory, src)
        return self._output(x, copy, mem_mask)

    @torch.no_grad()
    def cross_attention(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor, layer: int = -1
    ) -> torch.Tensor:
        """Cross-attention weights ``(B, heads, T, S)`` of decoder layer ``layer`` when the
        decoder reads ``tgt_in`` (teacher-forced): where each target position looks."""
        memory = self.encode(src, src_mask)
        x, rope = self._embed(tgt_in, self.tgt_emb, self.tgt_pos, 0)
        mem_mask = src_mask[:, None, None, :]
        layer %= len(self.decoder)
        for i, block in enumerate(self.decoder):
            kv = block.cross.memory_kv(memory)
            if i == layer:
                h = x + block.attn(block.ln1(x), rope, causal=True)
                B, T, _ = h.shape
                q = block.cross.q(block.ln2(h)).view(B, T, block.cross.n_head, -1).transpose(1, 2)
                e = (q.float() @ kv[0].float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
                return e.masked_fill(~mem_mask, float("-inf")).softmax(-1)
            x = block(x, rope, kv, mem_mask)
        raise AssertionError("unreachable")
