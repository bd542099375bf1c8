"""Joining and slicing the decoding states of several sequences, per model family.

Batching requests through one forward needs their decoding states side by side in one
batch. The LSTM's hidden state and the n-gram/NPLM history are per row, so any rows can be
joined. The Transformer's KV cache can hold rows of different lengths as a *ragged* cache
(``KVCache.lengths``: each row's own position; the model then decodes one token per row,
each at its position, attending to its own keys only), so requests of any prompt length
share one forward too. A state this module does not know is never joined: its requests
still run, one forward each.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from lmlab.models.transformer import KVCache


def _hidden_cat(hs: list[Any]) -> Any:
    if isinstance(hs[0], tuple):  # LSTM: (h, c), each (layers, B, H)
        return tuple(torch.cat([h[j] for h in hs], dim=1) for j in range(len(hs[0])))
    return torch.cat(hs, dim=1)  # GRU: (layers, B, H)


def _hidden_select(h: Any, idx: torch.Tensor) -> Any:
    if isinstance(h, tuple):
        return tuple(x.index_select(1, idx) for x in h)
    return h.index_select(1, idx)


def kind(state: Any) -> str | None:
    """``kv`` (a Transformer cache), ``rows`` (independent rows) or None (unknown)."""
    if isinstance(state, KVCache):
        return "kv"
    if getattr(state, "hidden", None) is not None or isinstance(
        getattr(state, "history", None), torch.Tensor
    ):
        return "rows"
    return None


def rows(state: Any) -> int:
    if isinstance(state, KVCache):
        return state.k[0].shape[0]
    if getattr(state, "hidden", None) is not None:
        h = state.hidden
        return (h[0] if isinstance(h, tuple) else h).shape[1]
    return state.history.shape[0]


def positions(state: Any) -> list[int] | None:
    """Tokens in each row of a KV cache (None for other states)."""
    if not isinstance(state, KVCache):
        return None
    if getattr(state, "lengths", None) is not None:
        return state.lengths.tolist()
    return [state.pos] * rows(state)


def can_join(a: Any, b: Any) -> bool:
    """Whether two states can become one batch."""
    ka, kb = kind(a), kind(b)
    if ka is None or ka != kb or type(a) is not type(b):
        return False
    if ka == "rows":
        return True
    same = a.k[0].dtype == b.k[0].dtype
    ragged = hasattr(a, "lengths")  # a model that decodes rows at their own positions
    return same and (ragged or a.pos == b.pos)


def _lengths(s: KVCache) -> torch.Tensor:
    if s.lengths is not None:
        return s.lengths
    return torch.full((rows(s),), s.pos, dtype=torch.long, device=s.k[0].device)


def join(states: list[Any]) -> Any:
    """One state holding the rows of ``states`` in order (each must pass :func:`can_join`)."""
    if len(states) == 1:
        return states[0]
    if isinstance(states[0], KVCache):  # caches grow on demand: join at the largest size
        cap = max(s.capacity for s in states)
        for s in states:
            s.reserve(cap)
    out = copy.copy(states[0])
    if isinstance(out, KVCache):
        out.k = [torch.cat([s.k[i] for s in states]) for i in range(len(out.k))]
        out.v = [torch.cat([s.v[i] for s in states]) for i in range(len(out.v))]
        if any(getattr(s, "lengths", None) is not None or s.pos != out.pos for s in states):
            out.lengths = torch.cat([_lengths(s) for s in states])
            out.pos = int(out.lengths.max())
    elif getattr(out, "hidden", None) is not None:
        out.hidden = _hidden_cat([s.hidden for s in states])
    else:
        out.history = torch.cat([s.history for s in states])
    return out


def select(state: Any, keep: list[int]) -> Any:
    """A state with only the rows ``keep`` (in that order)."""
    out = copy.copy(state)
    if isinstance(out, KVCache):
        idx = torch.tensor(keep, dtype=torch.long, device=state.k[0].device)
        out.k = [k.index_select(0, idx) for k in state.k]
        out.v = [v.index_select(0, idx) for v in state.v]
        if getattr(state, "lengths", None) is not None:
            out.lengths = state.lengths.index_select(0, idx)
            out.pos = int(out.lengths.max())
    elif getattr(out, "hidden", None) is not None:
        h = state.hidden
        dev = (h[0] if isinstance(h, tuple) else h).device
        out.hidden = _hidden_select(h, torch.tensor(keep, dtype=torch.long, device=dev))
    elif isinstance(getattr(out, "history", None), torch.Tensor):
        idx = torch.tensor(keep, dtype=torch.long, device=state.history.device)
        out.history = state.history.index_select(0, idx)
    else:
        raise ValueError(f"cannot select rows of a {type(state).__name__}")
    return out
