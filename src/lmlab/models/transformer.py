"""Decoder-only Transformer with GPT-2 or Llama blocks, one readable file.

``block="gpt2"``: LayerNorm, GELU MLP, learned absolute positions, biases.
``block="llama"``: RMSNorm, SwiGLU MLP, rotary positions (RoPE), grouped-query attention.
Both are pre-norm and use PyTorch's fused causal ``scaled_dot_product_attention``.
``for_depth(depth)`` is the one dial that scales a sensible model (width 64 x depth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmlab.errors import LmlabError
from lmlab.models.base import LanguageModel


@dataclass
class TransformerConfig:
    vocab_size: int = 256
    context_length: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # grouped-query attention (llama); None = n_head
    d_model: int = 256
    d_ff: int | None = None  # None: 4*d (gpt2) or 8/3*d rounded to 64 (llama)
    block: str = "gpt2"  # "gpt2" | "llama"
    dropout: float = 0.0
    bias: bool | None = None  # None: True for gpt2, False for llama
    qkv_bias: bool | None = None  # None: as ``bias``; True with bias=False is Qwen2's layout
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    gelu_approximate: str = "none"  # "tanh" reproduces GPT-2's published checkpoints exactly
    mlp: bool = True  # False: attention-only blocks (no MLP, no second norm), as in Olsson et al.

    def __post_init__(self) -> None:
        if self.block not in ("gpt2", "llama"):
            raise LmlabError(f"transformer block {self.block!r} unknown; use 'gpt2' or 'llama'")
        if self.d_model % self.n_head:
            raise LmlabError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if self.kv_heads <= 0 or self.n_head % self.kv_heads:
            raise LmlabError(
                f"n_head {self.n_head} must be a multiple of n_kv_head {self.kv_heads}"
            )
        if self.gelu_approximate not in ("none", "tanh"):
            raise LmlabError(
                f"gelu_approximate must be 'none' or 'tanh', got {self.gelu_approximate!r}"
            )
        if self.block == "llama" and self.head_dim % 2:
            raise LmlabError(f"RoPE needs an even head size, got {self.head_dim}")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def ff_dim(self) -> int:
        if self.d_ff:
            return self.d_ff
        if self.block == "gpt2":
            return 4 * self.d_model
        return 64 * math.ceil(8 * self.d_model / 3 / 64)

    @property
    def use_bias(self) -> bool:
        return self.block == "gpt2" if self.bias is None else self.bias

    @property
    def use_qkv_bias(self) -> bool:
        return self.use_bias if self.qkv_bias is None else self.qkv_bias


def for_depth(
    depth: int, vocab_size: int, context_length: int, block: str = "gpt2"
) -> TransformerConfig:
    """The one scale dial: ``depth`` layers, width 64*depth, heads of size 64.

    depth 12 is GPT-2 small's shape; depth 4 gives a 3M-parameter model (plus embeddings).
    """
    if depth < 1:
        raise LmlabError(f"--depth must be at least 1, got {depth}")
    return TransformerConfig(
        vocab_size=vocab_size,
        context_length=context_length,
        n_layer=depth,
        n_head=depth,
        d_model=64 * depth,
        block=block,
        n_kv_head=max(1, depth // 2) if block == "llama" and depth % 2 == 0 else None,
    )


class KVCache:
    """Keys and values of every layer for incremental decoding.

    It starts with room for ``min(context, INITIAL)`` tokens and doubles on demand up to the
    context length, so a model with an 8k context does not zero hundreds of megabytes for a
    short chat. A cache made by the fast decoder keeps all layers in one tensor
    (``_fast_kv``); :meth:`reserve` keeps that layout when it grows.
    """

    INITIAL = 256

    def __init__(
        self, cfg: TransformerConfig, batch_size: int, device, dtype, capacity: int | None = None
    ) -> None:
        self.max_capacity = cfg.context_length
        self.capacity = min(cfg.context_length, capacity or self.INITIAL)
        shape = (batch_size, cfg.kv_heads, self.capacity, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.pos = 0  # tokens already in the cache
        # Ragged batches (a server decoding requests of different lengths together): the
        # tokens of each row, (B,) int64; None while every row has ``pos`` tokens.
        self.lengths: torch.Tensor | None = None

    def reset(self) -> None:
        self.pos = 0
        self.lengths = None

    def reserve(self, n: int) -> None:
        """Make room for ``n`` tokens per row (an error beyond the context length)."""
        if n <= self.capacity:
            return
        if n > self.max_capacity:
            raise LmlabError(
                f"sequence of {n} tokens exceeds the context length {self.max_capacity}"
            )
        new = min(self.max_capacity, max(n, 2 * self.capacity))

        def grow(t: torch.Tensor) -> torch.Tensor:
            shape = (*t.shape[:-2], new - t.shape[-2], t.shape[-1])
            return torch.cat([t, t.new_zeros(shape)], dim=-2)

        fast = getattr(self, "_fast_kv", None)
        if fast is not None and fast[0] is self.k and fast[1] is self.v:
            k, v = grow(torch.from_numpy(fast[2])), grow(torch.from_numpy(fast[3]))
            self.k, self.v = list(k.unbind(0)), list(v.unbind(0))
            self._fast_kv = (self.k, self.v, k.numpy(), v.numpy())
        else:
            self.k = [grow(t) for t in self.k]
            self.v = [grow(t) for t in self.v]
        self.capacity = new


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def _rope_tables(cfg: TransformerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim))
    t = torch.arange(cfg.context_length).float()
    freqs = torch.outer(t, inv)  # (T, hd/2)
    return freqs.cos(), freqs.sin()


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, nh, T, hd); rotate pairs (first half, second half) as in Llama/HF.
    x1, x2 = x.chunk(2, dim=-1)
    cos = torch.cat([cos, cos], dim=-1).to(x.dtype)
    sin = torch.cat([sin, sin], dim=-1).to(x.dtype)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_head, self.n_kv, self.hd = cfg.n_head, cfg.kv_heads, cfg.head_dim
        self.qkv = nn.Linear(
            cfg.d_model, (cfg.n_head + 2 * cfg.kv_heads) * cfg.head_dim, bias=cfg.use_qkv_bias
        )
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.use_bias)
        self.dropout = cfg.dropout

    def forward(self, x, rope, cache: KVCache | None, layer: int, mask=None) -> torch.Tensor:
        """Causal self-attention; ``mask`` (bool, broadcast to ``(B, heads, T, T)``, without a
        cache) replaces the causal rule, e.g. for a block fine-tuned to attend both ways."""
        B, T, C = x.shape
        qkv = self.qkv(x)
        if qkv.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # PyTorch's CPU attention kernels are slower in bf16 than in fp32 (no AMX here):
            # the projections run in bf16, the attention itself in fp32.
            with torch.autocast("cpu", enabled=False):
                y = self._attend(qkv.float(), rope, cache, layer, B, T, C, mask)
        elif qkv.device.type == "cpu" and qkv.dtype != torch.float32:
            # bfloat16 weights on CPU (inference): the same split, and the KV cache is float32
            # (as the fast decoding step keeps it), so the attention reads exact keys.
            y = self._attend(qkv.float(), rope, cache, layer, B, T, C, mask).to(qkv.dtype)
        else:
            y = self._attend(qkv, rope, cache, layer, B, T, C, mask)
        return self.proj(y)

    def _attend(self, qkv, rope, cache: KVCache | None, layer: int, B, T, C, given=None):
        q, k, v = qkv.split(
            [self.n_head * self.hd, self.n_kv * self.hd, self.n_kv * self.hd], dim=-1
        )
        q = q.view(B, T, self.n_head, self.hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_kv, self.hd).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.view(B, T, self.n_kv, self.hd).transpose(1, 2)
        if rope is not None:
            q, k = _apply_rope(q, *rope), _apply_rope(k, *rope)
        if cache is not None and cache.lengths is not None:  # ragged rows, one token each
            return self._attend_ragged(q, k, v, cache, layer)
        if given is not None:
            is_causal, mask = False, given
        elif cache is None:
            is_causal, mask = True, None
        else:
            p = cache.pos
            cache.k[layer][:, :, p : p + T] = k
            cache.v[layer][:, :, p : p + T] = v
            k, v = cache.k[layer][:, :, : p + T], cache.v[layer][:, :, : p + T]
            k, v = k.to(q.dtype), v.to(q.dtype)  # no-op unless the cache has another type
            if T == 1:
                is_causal, mask = False, None
            elif p == 0:
                is_causal, mask = True, None
            else:  # a chunk after cached tokens: query i sees keys up to p + i
                is_causal = False
                mask = torch.ones(T, p + T, dtype=torch.bool, device=qkv.device).tril(diagonal=p)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.n_kv != self.n_head,
        )
        return y.transpose(1, 2).reshape(B, T, C)

    def _attend_ragged(self, q, k, v, cache: KVCache, layer: int) -> torch.Tensor:
        """One new token per row, row b at position ``cache.lengths[b]``: write its key and
        value there and let it attend to its own row's keys only."""
        B, _, _, hd = q.shape
        pos = cache.lengths  # (B,)
        rows = torch.arange(B, device=q.device)
        cache.k[layer][rows, :, pos] = k[:, :, 0].to(cache.k[layer].dtype)
        cache.v[layer][rows, :, pos] = v[:, :, 0].to(cache.v[layer].dtype)
        n = int(pos.max()) + 1
        mask = torch.arange(n, device=q.device) <= pos[:, None]  # (B, n): own keys so far
        y = F.scaled_dot_product_attention(
            q,
            cache.k[layer][:, :, :n].to(q.dtype),
            cache.v[layer][:, :, :n].to(q.dtype),
            attn_mask=mask[:, None, None, :],
            enable_gqa=self.n_kv != self.n_head,
        )
        return y.transpose(1, 2).reshape(B, 1, self.n_head * hd)


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.llama = cfg.block == "llama"
        self.gelu_approximate = cfg.gelu_approximate
        h = cfg.ff_dim
        if self.llama:  # SwiGLU: silu(x W1) * (x W3), then W2
            self.gate_up = nn.Linear(cfg.d_model, 2 * h, bias=cfg.use_bias)
        else:
            self.fc = nn.Linear(cfg.d_model, h, bias=cfg.use_bias)
        self.proj = nn.Linear(h, cfg.d_model, bias=cfg.use_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.llama:
            h = self.gate_up(x)
            gate, up = h.chunk(2, dim=-1)
            return self.proj(F.silu(gate) * up)
        h = self.fc(x)
        return self.proj(F.gelu(h, approximate=self.gelu_approximate))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        norm = (
            (lambda: RMSNorm(cfg.d_model, cfg.norm_eps))
            if cfg.block == "llama"
            else (lambda: nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.use_bias))
        )
        self.ln1, self.attn = norm(), Attention(cfg)
        self.ln2, self.mlp = (norm(), MLP(cfg)) if cfg.mlp else (None, None)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, rope, cache, layer, mask=None):
        if self.drop.p == 0.0:  # no dropout module calls on the decoding hot path
            x = x + self.attn(self.ln1(x), rope, cache, layer, mask)
            return x if self.mlp is None else x + self.mlp(self.ln2(x))
        x = x + self.drop(self.attn(self.ln1(x), rope, cache, layer, mask))
        return x if self.mlp is None else x + self.drop(self.mlp(self.ln2(x)))


class Transformer(LanguageModel):
    family = "transformer"

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = (
            nn.Embedding(cfg.context_length, cfg.d_model) if cfg.block == "gpt2" else None
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = (
            RMSNorm(cfg.d_model, cfg.norm_eps)
            if cfg.block == "llama"
            else nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.use_bias)
        )
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.tok_emb.weight
        if cfg.block == "llama":
            cos, sin = _rope_tables(cfg)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @classmethod
    def from_tensors(cls, config: TransformerConfig, tensors: dict[str, torch.Tensor]):
        """A model whose parameters *are* ``tensors`` (as :meth:`tensors_for_save` names
        them; a tied head stored once): no random initialisation, no copy. For pretrained
        weights read from a file, where building the model first would cost seconds and
        a second copy of the weights. The same names and shapes are required as by
        :meth:`load_tensors` (a RuntimeError otherwise)."""
        with torch.device("meta"):
            model = cls(config)
        names = set(model.tensors_for_save())
        missing, unexpected = sorted(names - set(tensors)), sorted(set(tensors) - names)
        if missing or unexpected:
            raise RuntimeError(
                f"missing tensors {missing[:3]}, unexpected tensors {unexpected[:3]}"
            )
        model.load_state_dict(tensors, strict=False, assign=True)
        if config.tie_embeddings:
            model.head.weight = model.tok_emb.weight
        if config.block == "llama":
            model.rope_cos, model.rope_sin = _rope_tables(config)
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if t.is_meta:  # pragma: no cover - a tensor the model has but the file lacks
                raise RuntimeError(f"missing tensors ['{name}']")
        return model

    def _apply(self, fn, recurse=True):
        """``.to(dtype)`` and the like: the RoPE tables stay float32 whatever type the
        weights take (positions, not weights; bf16 would blur far positions' angles)."""
        super()._apply(fn, recurse)
        if getattr(self, "rope_cos", None) is not None and self.rope_cos.dtype != torch.float32:
            cos, sin = _rope_tables(self.config)
            self.rope_cos = cos.to(self.rope_cos.device)
            self.rope_sin = sin.to(self.rope_sin.device)
        return self

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def new_state(
        self,
        batch_size: int,
        device="cpu",
        dtype: torch.dtype | None = None,
        capacity: int | None = None,
    ) -> KVCache:
        """An empty KV cache with room for ``capacity`` tokens per row to start with (it
        grows on demand up to the context length). Its type is the weights' type, except
        for 16-bit weights on CPU: float32 (attention runs in float32 there)."""
        if dtype is None:
            dtype = self.tok_emb.weight.dtype
            if torch.device(device).type == "cpu" and dtype in (torch.bfloat16, torch.float16):
                dtype = torch.float32
        return KVCache(self.config, batch_size, device, dtype, capacity)

    def hidden_states(self, ids: torch.Tensor, state: KVCache | None = None) -> torch.Tensor:
        """Final normalised hidden states ``(B, T, d)`` (for pooled embeddings and probes)."""
        B, T = ids.shape
        if state is not None and state.lengths is not None:
            return self._hidden_ragged(ids, state)
        start = state.pos if state is not None else 0
        if start + T > self.config.context_length:
            raise LmlabError(
                f"sequence of {start + T} tokens exceeds the context length {self.config.context_length}"
            )
        if state is not None:
            state.reserve(start + T)
        x = self.tok_emb(ids)
        rope = None
        if self.pos_emb is not None:
            x = x + self.pos_emb.weight[start : start + T]
        else:
            rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T])
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, state, i)
        if state is not None:
            state.pos += T
        return self.ln_f(x)

    def _hidden_ragged(self, ids: torch.Tensor, state: KVCache) -> torch.Tensor:
        """One token per row, each at its own position (``state.lengths``)."""
        if ids.shape[1] != 1:
            raise LmlabError("a ragged KV cache takes one token per row at a time")
        pos = state.lengths
        if int(pos.max()) >= self.config.context_length:
            raise LmlabError(f"a row exceeds the context length {self.config.context_length}")
        state.reserve(int(pos.max()) + 1)
        x = self.tok_emb(ids)
        rope = None
        if self.pos_emb is not None:
            x = x + self.pos_emb(pos)[:, None]
        else:  # (B, 1, 1, hd/2): broadcast over heads and the one position
            rope = (self.rope_cos[pos][:, None, None], self.rope_sin[pos][:, None, None])
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, state, i)
        state.lengths = pos + 1
        state.pos = int(state.lengths.max())
        return self.ln_f(x)

    def forward(self, ids: torch.Tensor, state: KVCache | None = None) -> torch.Tensor:
        return self.head(self.hidden_states(ids, state))


def _register() -> None:
    from lmlab.models import register_family

    register_family(Transformer.family, TransformerConfig, Transformer)


_register()
