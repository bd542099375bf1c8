"""Attention patterns of an lmlab Transformer and per-head induction (prefix-matching) scores.

PyTorch's fused ``scaled_dot_product_attention`` never materialises the attention weights,
so they are recomputed outside the model's hot path: forward pre-hooks capture each
attention module's input (and the RoPE tables of Llama blocks), and the queries and keys
are rebuilt from the module's own ``qkv`` weights. Training speed is untouched, and GPT-2
and Llama blocks (grouped-query attention included) are handled alike.

The prefix-matching score (Olsson et al. 2022) runs the model on repeated random tokens
``[r1 .. rk, r1 .. rk]`` and averages, over the second repeat, the attention a token pays
to the token right after its earlier occurrence. An induction head scores near 1; a head
that attends anywhere else scores near 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from lmlab.errors import LmlabError
from lmlab.models.transformer import Attention, Transformer, _apply_rope


def _pattern(attn: Attention, x: torch.Tensor, rope) -> torch.Tensor:
    """Softmax attention weights ``(B, n_head, T, T)`` of one attention module on input ``x``."""
    B, T, _ = x.shape
    x = x.float()
    q, k, _ = attn.qkv(x).split(
        [attn.n_head * attn.hd, attn.n_kv * attn.hd, attn.n_kv * attn.hd], dim=-1
    )
    q = q.view(B, T, attn.n_head, attn.hd).transpose(1, 2)  # (B, nh, T, hd)
    k = k.view(B, T, attn.n_kv, attn.hd).transpose(1, 2)  # (B, nkv, T, hd)
    if rope is not None:
        q, k = _apply_rope(q, *rope), _apply_rope(k, *rope)
    if attn.n_kv != attn.n_head:  # grouped-query: query head h reads kv head h // group
        k = k.repeat_interleave(attn.n_head // attn.n_kv, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(attn.hd)  # (B, nh, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)


def _check_transformer(model) -> Transformer:
    if not isinstance(model, Transformer):
        family = getattr(model, "family", type(model).__name__)
        raise LmlabError(
            f"attention patterns need a transformer; this model is {family!r} "
            "(the in-context-learning score works for every family)"
        )
    return model


@torch.no_grad()
def attention_patterns(model: Transformer, ids: torch.Tensor) -> list[torch.Tensor]:
    """Attention weights of every layer for ``ids`` ``(B, T)``: a list of ``(B, H, T, T)``."""
    model = _check_transformer(model)
    captured: list[tuple[torch.Tensor, object]] = []
    hooks = [
        block.attn.register_forward_pre_hook(
            lambda _m, args: captured.append((args[0].detach(), args[1]))
        )
        for block in model.blocks
    ]
    try:
        model(ids)
    finally:
        for h in hooks:
            h.remove()
    return [
        _pattern(block.attn, x, rope)
        for block, (x, rope) in zip(model.blocks, captured, strict=True)
    ]


def prefix_matching_score(pattern: torch.Tensor, k: int, start: int = 0) -> torch.Tensor:
    """Mean attention from the second repeat to the token after each earlier occurrence.

    ``pattern`` is ``(..., H, T, T)`` for sequences whose tokens ``start .. start+k-1``
    repeat at ``start+k .. start+2k-1``. Query ``i`` in the second repeat saw its token
    first at ``i - k``; the induction target is key ``i - k + 1``. Returns ``(H,)``
    averaged over the query positions and every leading (batch) dimension.
    """
    T = pattern.shape[-1]
    if k < 1 or start + 2 * k > T:
        raise ValueError(f"a repeat of {k} tokens from {start} does not fit in {T} positions")
    queries = torch.arange(start + k, start + 2 * k, device=pattern.device)
    weights = pattern[..., queries, queries - k + 1]  # (..., H, k)
    return weights.reshape(-1, *weights.shape[-2:]).mean(dim=(0, 2))


def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention each token pays to the one just before it: ``(H,)``."""
    T = pattern.shape[-1]
    q = torch.arange(1, T, device=pattern.device)
    weights = pattern[..., q, q - 1]
    return weights.reshape(-1, *weights.shape[-2:]).mean(dim=(0, 2))


def repeated_random_tokens(
    n: int,
    k: int,
    token_ids: Sequence[int] | np.ndarray,
    seed: int = 0,
    bos: int | None = None,
) -> torch.Tensor:
    """``n`` sequences ``[bos?] r1..rk r1..rk`` of random tokens drawn from ``token_ids``.

    Tokens within one repeat are distinct when there are enough of them, so every token of
    the second repeat has exactly one earlier occurrence.
    """
    pool = np.asarray(token_ids, dtype=np.int64)
    if len(pool) < 2:
        raise LmlabError("need at least 2 ordinary tokens to build repeated random sequences")
    rng = np.random.default_rng(seed)
    distinct = k <= len(pool)
    rows = [rng.choice(pool, size=k, replace=not distinct) for _ in range(n)]
    seq = np.concatenate([np.stack(rows)] * 2, axis=1)
    if bos is not None:
        seq = np.concatenate([np.full((n, 1), bos, dtype=np.int64), seq], axis=1)
    return torch.from_numpy(seq)


@torch.no_grad()
def head_scores(
    model: Transformer,
    token_ids: Sequence[int] | np.ndarray,
    k: int | None = None,
    n_seqs: int = 16,
    seed: int = 0,
    bos: int | None = None,
    batch_size: int = 8,
) -> dict[str, np.ndarray]:
    """Per-head prefix-matching and previous-token scores, each ``(n_layer, n_head)``.

    ``k`` defaults to the longest repeat that fits the context (at most 128 tokens).
    """
    model = _check_transformer(model)
    ctx = model.config.context_length - (bos is not None)
    k = k or min(128, ctx // 2)
    if 2 * k > ctx:
        raise LmlabError(f"a repeat of {k} tokens twice does not fit the context {ctx}")
    ids = repeated_random_tokens(n_seqs, k, token_ids, seed, bos)
    device = next(model.parameters()).device
    start = int(bos is not None)
    prefix, prev = [], []
    for i in range(0, n_seqs, batch_size):
        pats = attention_patterns(model, ids[i : i + batch_size].to(device))
        w = len(ids[i : i + batch_size])
        prefix.append(torch.stack([prefix_matching_score(p, k, start) for p in pats]) * w)
        prev.append(torch.stack([previous_token_score(p) for p in pats]) * w)
    return {
        "prefix_matching": (sum(prefix) / n_seqs).cpu().numpy(),
        "previous_token": (sum(prev) / n_seqs).cpu().numpy(),
    }


def top_heads(scores: np.ndarray, n: int = 5) -> list[tuple[int, int, float]]:
    """The ``n`` highest-scoring heads as ``(layer, head, score)``, best first."""
    order = np.argsort(scores, axis=None)[::-1][:n]
    return [
        (int(i // scores.shape[1]), int(i % scores.shape[1]), float(scores.flat[i])) for i in order
    ]


def plot_head_scores(scores: np.ndarray, path, title: str = "prefix-matching score") -> None:
    """A layer x head heatmap PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L, H = scores.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * H, 1.0 + 0.45 * L))
    im = ax.imshow(scores, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    for (i, j), v in np.ndenumerate(scores):
        if L * H <= 64:
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if v > 0.6 else "white",
            )
    fig.colorbar(im, ax=ax)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
