"""The n-gram family: a backoff language model (Kneser-Ney estimated, or read from ARPA).

It speaks the same protocol as the neural families, so ``lmlab eval``, ``generate`` and the
server work with it: ``forward(ids)`` returns log-probabilities over the vocabulary, and the
decoding state holds the last ``order - 1`` token ids. The tables are torch buffers (see
:mod:`lmlab.models.kneser_ney` for the key layout); ``load_tensors`` adopts loaded shapes.

``<eos>`` plays ``</s>``; the token after it (and the first token of a stream) is predicted
from the ``<s>`` context, exactly as KenLM scores one sentence per line.

Example::

    model = NGramLM.fit(train_ids, order=5, vocab_size=tok.vocab_size, eos_id=tok.eos_id)
    log10_probs = model.score(valid_ids)       # one log10 p per token, fast path
    logits = model(torch.tensor([ids]))        # (1, T, V) natural-log probabilities
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lmlab.errors import LmlabError
from lmlab.models.base import LanguageModel
from lmlab.models.kneser_ney import MAX_ORDER, NGramTables, estimate, table_arrays

LN10 = math.log(10.0)


@dataclass
class NGramConfig:
    vocab_size: int = 10000
    order: int = 3
    eos_id: int = 0
    context_length: int | None = None  # any length; only the last order-1 tokens matter

    def __post_init__(self) -> None:
        if not 1 <= self.order <= MAX_ORDER:
            raise LmlabError(f"n-gram order must be between 1 and {MAX_ORDER}, got {self.order}")
        if self.vocab_size < 1 or not 0 <= self.eos_id < self.vocab_size:
            raise LmlabError("n-gram vocab_size must be positive and eos_id inside it")


class NGramState:
    """The last ``order - 1`` token ids of each sequence (``<eos>``-filled when fresh)."""

    def __init__(self, history: torch.Tensor) -> None:
        self.history = history  # (B, order-1) int64


def _lookup(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each ``query`` in sorted ``keys``, or -1 where absent."""
    if keys.size == 0:
        return np.full_like(query, -1)
    idx = np.searchsorted(keys, query)
    safe = np.minimum(idx, keys.size - 1)
    return np.where((keys[safe] == query) & (query >= 0), safe, -1)


class NGramLM(LanguageModel):
    family = "ngram"

    def __init__(self, config: NGramConfig) -> None:
        super().__init__()
        self.config = cfg = config
        w = cfg.vocab_size + 1
        # An empty model (uniform unigrams) until fit or load_tensors fills the tables.
        self.register_buffer("logp_1", torch.full((w,), -math.log10(cfg.vocab_size)))
        self.logp_1[cfg.vocab_size] = -99.0
        self.register_buffer("bow_1", torch.zeros(w))
        for k in range(2, cfg.order + 1):
            self.register_buffer(f"key_{k}", torch.zeros(0, dtype=torch.int64))
            self.register_buffer(f"logp_{k}", torch.zeros(0))
            if k < cfg.order:
                self.register_buffer(f"bow_{k}", torch.zeros(0))
        self.register_buffer("discounts", torch.zeros(cfg.order, 3))

    # ---- construction -------------------------------------------------------------
    @classmethod
    def fit(cls, token_ids: np.ndarray, order: int, vocab_size: int, eos_id: int = 0) -> NGramLM:
        """Estimate an interpolated modified Kneser-Ney model from a token-id stream."""
        model = cls(NGramConfig(vocab_size=vocab_size, order=order, eos_id=eos_id))
        model.set_tables(estimate(token_ids, order, vocab_size, eos_id))
        return model

    def set_tables(self, tables: NGramTables) -> None:
        """Adopt estimated or imported tables (shapes may differ from the current ones)."""
        if tables.order != self.config.order or tables.vocab_size != self.config.vocab_size:
            raise LmlabError("n-gram tables do not match the model's order or vocabulary size")
        self.load_tensors({k: torch.from_numpy(v) for k, v in table_arrays(tables).items()})

    def tables(self) -> NGramTables:
        """The tables as numpy arrays (for ARPA export and inspection)."""
        n = self.config.order
        w = self.config.vocab_size + 1
        keys = [np.arange(w, dtype=np.int64)] + [
            self._buf("key", k).numpy() for k in range(2, n + 1)
        ]
        logp = [self._buf("logp", k).numpy() for k in range(1, n + 1)]
        bows = [self._buf("bow", k).numpy() for k in range(1, n)]
        return NGramTables(self.config.vocab_size, keys, logp, bows, self.discounts.numpy())

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        expected = set(self._buffers)
        if set(tensors) != expected:
            missing = sorted(expected - set(tensors)) or sorted(set(tensors) - expected)
            raise LmlabError(
                f"n-gram weights do not match an order-{self.config.order} model "
                f"(tensor {missing[0]!r}); check config.toml against model.safetensors"
            )
        w = self.config.vocab_size + 1
        for name, value in tensors.items():
            if name in ("logp_1", "bow_1") and value.shape != (w,):
                raise LmlabError(
                    f"n-gram tensor {name} has shape {tuple(value.shape)}, expected ({w},)"
                )
            dtype = torch.int64 if name.startswith("key_") else torch.float32
            self._buffers[name] = value.detach().to(dtype).contiguous().clone()
        for k in range(2, self.config.order + 1):
            key = self._buf("key", k)
            same = key.shape == self._buf("logp", k).shape
            if k < self.config.order:
                same = same and key.shape == self._buf("bow", k).shape
            if not same or bool((key[1:] <= key[:-1]).any()):
                raise LmlabError(
                    f"n-gram tables of order {k} are inconsistent (lengths or key order); "
                    "the model file is corrupt, rebuild it"
                )

    def ngram_counts(self) -> list[int]:
        """Number of n-grams of each order (unigrams include ``<s>``, as in ARPA)."""
        return [self.config.vocab_size + 1] + [
            self._buf("key", k).numel() for k in range(2, self.config.order + 1)
        ]

    def _buf(self, kind: str, k: int) -> torch.Tensor:
        return self._buffers[f"{kind}_{k}"]

    # ---- protocol -----------------------------------------------------------------
    @property
    def context_length(self) -> int | None:
        return None

    def num_params(self, trainable_only: bool = False) -> int:
        """Stored probabilities and backoff weights (the model's free numbers)."""
        if trainable_only:
            return 0
        n = self.config.order
        return self.config.vocab_size * 2 + sum(
            self._buf("logp", k).numel() + (self._buf("bow", k).numel() if k < n else 0)
            for k in range(2, n + 1)
        )

    def new_state(self, batch_size: int, device: torch.device | str = "cpu") -> NGramState:
        hist = torch.full(
            (batch_size, self.config.order - 1), self.config.eos_id, dtype=torch.int64
        )
        return NGramState(hist.to(device))

    def _np(self, kind: str, k: int) -> np.ndarray:
        return self._buf(kind, k).detach().cpu().numpy()

    def _chains(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """For each position j of ``x`` (B, L) and order k: ``targets[k-1]`` = id of the
        k-gram ending at j, ``contexts[k-1]`` = the same seen as a context (``<eos>`` read
        as ``<s>``, so nothing extends across a sentence end); -1 where absent.
        Numpy, single-threaded: these are cheap gathers that torch threads only slow down."""
        cfg = self.config
        w, bos = cfg.vocab_size + 1, cfg.vocab_size
        is_eos = x == cfg.eos_id
        targets = [x]
        contexts = [np.where(is_eos, bos, x)]
        none = np.full_like(x[:, :1], -1)
        for k in range(2, cfg.order + 1):
            prev = np.concatenate([none, contexts[-1][:, :-1]], axis=1)
            t = _lookup(self._np("key", k), np.where(prev >= 0, prev * w + x, -1))
            targets.append(t)
            contexts.append(np.where(is_eos, -1, t))
        return targets, contexts

    def forward(self, ids: torch.Tensor, state: NGramState | None = None) -> torch.Tensor:
        """Natural-log probabilities ``(B, T, V)``: ``[:, i]`` is p(next | ids[:, : i + 1])."""
        cfg = self.config
        b, t = ids.shape
        n, v, w = cfg.order, cfg.vocab_size, cfg.vocab_size + 1
        if state is None:
            state = self.new_state(b, ids.device)
        ids = ids.to(torch.int64)
        x = torch.cat([state.history.to(ids.device), ids], dim=1)  # (B, n-1+T)
        _, contexts_np = self._chains(x.cpu().numpy())
        contexts = [torch.from_numpy(c).to(ids.device) for c in contexts_np]
        out = self.logp_1[:v].expand(b * t, v).clone()  # (B*T, V) log10
        rows_all = torch.arange(b * t, device=ids.device)
        for k in range(1, n):  # context length k -> explicit n-grams of order k+1
            ctx = contexts[k - 1][:, n - 1 : n - 1 + t].reshape(-1)  # context ending at each input
            ok = ctx >= 0
            if not bool(ok.any()):
                break
            out[ok] += self._buf("bow", k)[ctx[ok]].unsqueeze(1)
            keys = self._buf("key", k + 1)
            c = ctx[ok]
            lo = torch.searchsorted(keys, c * w)
            hi = torch.searchsorted(keys, c * w + w)
            cnt = hi - lo
            total = int(cnt.sum())
            if total:
                rows = torch.repeat_interleave(rows_all[ok], cnt)
                starts = torch.repeat_interleave(lo - (torch.cumsum(cnt, 0) - cnt), cnt)
                idx = starts + torch.arange(total, device=ids.device)
                out[rows, keys[idx] % w] = self._buf("logp", k + 1)[idx]
        if n > 1:
            state.history = x[:, -(n - 1) :]
        return (out * LN10).view(b, t, v)

    # ---- fast scoring ---------------------------------------------------------------
    def score(self, token_ids: np.ndarray | torch.Tensor) -> np.ndarray:
        """log10 p of every token of a stream given the ones before it (``<s>`` at the start).

        Scores only the observed tokens (no full distributions), so a million tokens take a
        fraction of a second; ``forward`` gives the same numbers.
        """
        x = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if x.size and (int(x.min()) < 0 or int(x.max()) >= self.config.vocab_size):
            raise LmlabError(f"token ids must lie in [0, {self.config.vocab_size})")
        x = np.concatenate([[self.config.eos_id], x]).reshape(1, -1)
        targets, contexts = self._chains(x)
        n = self.config.order
        total = np.zeros(x.shape[1] - 1, dtype=np.float64)
        done = np.zeros(total.shape, dtype=bool)
        for k in range(n, 0, -1):
            tk = targets[k - 1][0, 1:]
            hit = ~done & (tk >= 0)
            total[hit] += self._np("logp", k)[tk[hit]]
            done |= hit
            if k > 1:
                c = contexts[k - 2][0, :-1]
                need = ~done & (c >= 0)
                total[need] += self._np("bow", k - 1)[c[need]]
        return total

    def perplexity(self, token_ids: np.ndarray) -> float:
        """Perplexity of a token stream (every token predicted, ``<eos>`` included)."""
        s = self.score(token_ids)
        return float(10.0 ** (-s.mean()))


def _register() -> None:
    from lmlab.models import register_family

    register_family(NGramLM.family, NGramConfig, NGramLM)


_register()
