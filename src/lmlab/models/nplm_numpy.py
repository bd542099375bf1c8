"""Bengio's neural probabilistic LM in plain numpy, forward and backward written out by hand.

A teaching module: no autograd, every gradient derived on the page. For a batch of N
windows of c word ids ``X`` with targets ``y``:

    forward                                      backward (mean cross-entropy L)
    x  = C[X] reshaped (N, c*E)                  dC[X] += dx   (scatter-add: shared rows)
    z1 = x H^T + d          (N, Hd)              dH = d1^T x,  dd = sum d1,  dx = d1 H (+ d2 W)
    a1 = f(z1)                                   d1 = (d2 U) * f'(z1)
    z2 = a1 U^T + b (+ x W^T)   (N, V)           dU = d2^T a1, db = sum d2,  dW = d2^T x
    p  = softmax(z2)                             d2 = (p - onehot(y)) / N
    L  = -mean log p[y]

``d1``/``d2`` are the delta terms (dL/dz) propagated back layer by layer; each layer is
``z = W a + b`` followed by ``a = f(z)``. ``sgd_step`` applies ``theta -= lr * grad``.
The weights use the same names and shapes as :class:`lmlab.models.nplm.NPLM`, so
``to_torch()`` gives a model that every lmlab command can evaluate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lmlab.errors import LmlabError
from lmlab.models.nplm import NPLM, NPLMConfig


def _act(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(z) and f'(z)."""
    if name == "tanh":
        a = np.tanh(z)
        return a, 1.0 - a * a
    if name == "relu":
        return np.maximum(z, 0.0), (z > 0).astype(z.dtype)
    if name == "sigmoid":
        a = 1.0 / (1.0 + np.exp(-z))
        return a, a * (1.0 - a)
    raise LmlabError(f"activation {name!r} unknown; use tanh, relu or sigmoid")


@dataclass
class Cache:
    """What the backward pass needs from the forward pass."""

    X: np.ndarray
    x: np.ndarray
    z1: np.ndarray
    a1: np.ndarray
    fprime: np.ndarray
    p: np.ndarray


@dataclass
class NumpyNPLM:
    """Weights of the NPLM as numpy arrays (float64 by default)."""

    config: NPLMConfig
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def init(cls, config: NPLMConfig, seed: int = 0, dtype=np.float64) -> NumpyNPLM:
        rng = np.random.default_rng(seed)
        v, e, h, c = config.vocab_size, config.embed_dim, config.hidden_size, config.context

        def uniform(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
            bound = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-bound, bound, shape).astype(dtype)

        p = {
            "embed.weight": (rng.standard_normal((v, e)) * 0.1).astype(dtype),  # C
            "hidden.weight": uniform((h, c * e), c * e),  # H
            "hidden.bias": uniform((h,), c * e),  # d
            "out.weight": uniform((v, h), h),  # U
            "out.bias": np.zeros(v, dtype=dtype),  # b
        }
        if config.direct:
            p["direct.weight"] = np.zeros((v, c * e), dtype=dtype)  # W
        return cls(config, p)

    # ---- forward and backward ------------------------------------------------------
    def forward(self, X: np.ndarray, y: np.ndarray) -> tuple[float, Cache]:
        """Mean cross-entropy of predicting ``y`` (N,) from windows ``X`` (N, c)."""
        P = self.params
        n = X.shape[0]
        x = P["embed.weight"][X].reshape(n, -1)  # (N, c*E)
        z1 = x @ P["hidden.weight"].T + P["hidden.bias"]  # (N, Hd)
        a1, fprime = _act(self.config.activation, z1)
        z2 = a1 @ P["out.weight"].T + P["out.bias"]  # (N, V)
        if "direct.weight" in P:
            z2 = z2 + x @ P["direct.weight"].T
        z2 = z2 - z2.max(axis=1, keepdims=True)  # softmax is shift-invariant; avoids overflow
        e = np.exp(z2)
        p = e / e.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(p[np.arange(n), y])))
        return loss, Cache(X, x, z1, a1, fprime, p)

    def backward(self, cache: Cache, y: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of the mean loss with respect to every weight."""
        P = self.params
        n, c = cache.X.shape
        d2 = cache.p.copy()
        d2[np.arange(n), y] -= 1.0
        d2 /= n  # dL/dz2
        g = {
            "out.weight": d2.T @ cache.a1,
            "out.bias": d2.sum(axis=0),
        }
        d1 = (d2 @ P["out.weight"]) * cache.fprime  # dL/dz1
        g["hidden.weight"] = d1.T @ cache.x
        g["hidden.bias"] = d1.sum(axis=0)
        dx = d1 @ P["hidden.weight"]  # dL/dx
        if "direct.weight" in P:
            g["direct.weight"] = d2.T @ cache.x
            dx = dx + d2 @ P["direct.weight"]
        d_embed = np.zeros_like(P["embed.weight"])
        # A word used twice in a batch gets both contributions: scatter-add, not assignment.
        np.add.at(d_embed, cache.X.reshape(-1), dx.reshape(n * c, -1))
        g["embed.weight"] = d_embed
        return g

    def sgd_step(self, grads: dict[str, np.ndarray], lr: float) -> None:
        for k, gk in grads.items():
            self.params[k] -= lr * gk

    # ---- data and training -----------------------------------------------------------
    def windows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All (window, next word) pairs of a stream, left-padded with ``pad_id``."""
        c = self.config.context
        ids = np.asarray(ids, dtype=np.int64)
        padded = np.concatenate([np.full(c, self.config.pad_id), ids])
        X = np.lib.stride_tricks.sliding_window_view(padded, c)[: len(ids)]
        return X, ids

    def train_sgd(
        self,
        ids: np.ndarray,
        steps: int,
        batch_size: int = 64,
        lr: float = 0.5,
        seed: int = 0,
        time_limit: float | None = None,
    ) -> list[float]:
        """Plain minibatch SGD on random windows of ``ids``; returns the loss of each step.

        The learning rate decays linearly to a tenth over ``steps``; ``time_limit``
        (seconds) stops early.
        """
        X, y = self.windows(ids)
        rng = np.random.default_rng(seed)
        losses = []
        t0 = time.perf_counter()
        for step in range(steps):
            idx = rng.integers(0, len(y), batch_size)
            loss, cache = self.forward(X[idx], y[idx])
            self.sgd_step(self.backward(cache, y[idx]), lr * (1.0 - 0.9 * step / steps))
            losses.append(loss)
            if time_limit is not None and time.perf_counter() - t0 >= time_limit:
                break
        return losses

    def evaluate(self, ids: np.ndarray, batch_size: int = 1024) -> float:
        """Mean cross-entropy (nats) over every position of ``ids``."""
        X, y = self.windows(ids)
        total = 0.0
        for s in range(0, len(y), batch_size):
            loss, _ = self.forward(X[s : s + batch_size], y[s : s + batch_size])
            total += loss * len(y[s : s + batch_size])
        return total / len(y)

    def to_torch(self) -> NPLM:
        """The same weights in the torch :class:`NPLM` (float32), for lmlab's tools."""
        import torch

        model = NPLM(self.config)
        model.load_tensors(
            {k: torch.tensor(v, dtype=torch.float32) for k, v in self.params.items()}
        )
        return model
