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

:func:`ablate_heads` zeroes chosen heads' outputs (before the output projection) for as
long as it is active, to test what those heads do: ablating induction heads should raise
the loss on a repeated sequence, ablating as many random heads much less.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

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


class AttentionInputs:
    """Context manager: records each attention module's input (and RoPE tables) during the
    forward passes run inside it, so that patterns can be rebuilt afterwards layer by layer
    (:meth:`patterns`) without keeping every layer's ``(B, H, T, T)`` weights at once."""

    def __init__(self, model: Transformer) -> None:
        self.model = _check_transformer(model)
        self.captured: list[tuple[torch.Tensor, object]] = []
        self._hooks: list = []

    def __enter__(self) -> AttentionInputs:
        self._hooks = [
            block.attn.register_forward_pre_hook(
                lambda _m, args: self.captured.append((args[0].detach(), args[1]))
            )
            for block in self.model.blocks
        ]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def patterns(self) -> Iterator[tuple[int, torch.Tensor]]:
        """``(layer, weights (B, H, T, T))`` for the last forward pass, one layer at a time."""
        blocks = self.model.blocks
        for layer, (block, (x, rope)) in enumerate(
            zip(blocks, self.captured[-len(blocks) :], strict=True)
        ):
            yield layer, _pattern(block.attn, x, rope)


@torch.no_grad()
def attention_patterns(model: Transformer, ids: torch.Tensor) -> list[torch.Tensor]:
    """Attention weights of every layer for ``ids`` ``(B, T)``: a list of ``(B, H, T, T)``."""
    with AttentionInputs(model) as rec:
        model(ids)
    return [p for _, p in rec.patterns()]


@contextmanager
def ablate_heads(model: Transformer, heads: Iterable[tuple[int, int]]) -> Iterator[None]:
    """Zero the outputs of ``heads`` (``(layer, head)`` pairs) inside the ``with`` block.

    A head's output is its slice of the attention result before the output projection, so
    the zeroed head adds nothing to the residual stream (zero ablation).
    """
    model = _check_transformer(model)
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < len(model.blocks) and 0 <= head < model.config.n_head):
            raise LmlabError(f"no head {head} in layer {layer} of this model")
        by_layer.setdefault(int(layer), []).append(int(head))
    hd = model.config.head_dim

    def hook_for(idx: list[int]):
        def hook(_m, args):
            y = args[0].clone()
            for h in idx:
                y[..., h * hd : (h + 1) * hd] = 0
            return (y, *args[1:])

        return hook

    hooks = [
        model.blocks[layer].attn.proj.register_forward_pre_hook(hook_for(idx))
        for layer, idx in by_layer.items()
    ]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


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
    return scores_on_repeats(model, ids, k, int(bos is not None), batch_size)


@torch.no_grad()
def scores_on_repeats(
    model: Transformer,
    ids: torch.Tensor,
    k: int,
    start: int = 0,
    batch_size: int = 8,
    losses: bool = False,
    on_batch=None,
) -> dict[str, np.ndarray]:
    """Prefix-matching and previous-token scores ``(n_layer, n_head)`` on repeated sequences
    ``ids`` (tokens ``start .. start+k-1`` repeated right after them).

    With ``losses`` also the per-token losses ``(N, T-1)`` (``loss[i, t]`` predicts token
    ``t + 1``) from the same forward passes; batches are cut so that no batch's logits
    exceed about 256 MB, whatever the vocabulary. ``on_batch(lo, hi)`` is called before the
    forward pass of rows ``lo:hi`` (for other hooks that record along, e.g. the logit lens).
    """
    import torch.nn.functional as F

    model = _check_transformer(model)
    device = next(model.parameters()).device
    n, T = ids.shape
    if losses:
        batch_size = rows_per_batch(batch_size, T, model.config.vocab_size)
    prefix = torch.zeros(model.config.n_layer, model.config.n_head, dtype=torch.float64)
    prev = torch.zeros_like(prefix)
    loss = torch.zeros(n, T - 1)
    for lo in range(0, n, batch_size):
        b = ids[lo : lo + batch_size].to(device)
        if on_batch is not None:
            on_batch(lo, lo + len(b))
        with AttentionInputs(model) as rec:
            logits = model(b)
        if losses:
            loss[lo : lo + len(b)] = F.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), b[:, 1:], reduction="none"
            ).cpu()
        del logits
        for layer, p in rec.patterns():
            prefix[layer] += prefix_matching_score(p, k, start).double().cpu() * len(b)
            prev[layer] += previous_token_score(p).double().cpu() * len(b)
    out = {"prefix_matching": (prefix / n).numpy(), "previous_token": (prev / n).numpy()}
    if losses:
        out["loss"] = loss.numpy()
    return out


def rows_per_batch(batch_size: int, length: int, vocab_size: int, limit: int = 1 << 26) -> int:
    """At most ``batch_size`` rows, fewer when the logits ``(rows, length, vocab_size)``
    would exceed ``limit`` floats (256 MB): a 49k-token vocabulary takes a few rows at once."""
    return max(1, min(batch_size, limit // max(1, length * vocab_size)))


def top_heads(scores: np.ndarray, n: int = 5) -> list[tuple[int, int, float]]:
    """The ``n`` highest-scoring heads as ``(layer, head, score)``, best first."""
    order = np.argsort(scores, axis=None)[::-1][:n]
    return [
        (int(i // scores.shape[1]), int(i % scores.shape[1]), float(scores.flat[i])) for i in order
    ]


def plot_head_scores(scores: np.ndarray, path, title: str = "prefix-matching score") -> None:
    """A layer x head heatmap PNG (layers across when there are many more layers than
    heads, e.g. 30 x 9, so the figure stays wide rather than tall)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L, H = scores.shape
    across = L > 2 * H
    grid = scores.T if across else scores  # rows x columns as drawn
    R, C = grid.shape
    fig, ax = plt.subplots(figsize=(min(14.0, 1.6 + 0.42 * C), min(14.0, 1.0 + 0.4 * R)))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xlabel("layer" if across else "head")
    ax.set_ylabel("head" if across else "layer")
    ax.set_xticks(range(C))
    ax.set_yticks(range(R))
    ax.tick_params(labelsize=7 if C > 16 else 9)
    if L * H <= 64:
        for (i, j), v in np.ndenumerate(grid):
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


def plot_patterns(
    patterns: list[tuple[int, int, np.ndarray]],
    path,
    title: str = "",
) -> None:
    """Attention weights ``(T, T)`` of a few heads side by side, one panel per
    ``(layer, head, weights)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(patterns)
    if n == 0:
        return
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.4, 3.0), squeeze=False)
    for ax, (layer, head, w) in zip(axes[0], patterns, strict=True):
        ax.imshow(w, cmap="magma", vmin=0, vmax=max(1e-6, float(np.max(w))), aspect="equal")
        ax.set_title(f"layer {layer} head {head}", fontsize=8)
        ax.set_xlabel("key position", fontsize=7)
        ax.set_ylabel("query position", fontsize=7)
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
