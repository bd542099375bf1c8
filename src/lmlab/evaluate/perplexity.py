"""Perplexity and bits per byte of any lmlab model on a token stream.

Bits per byte divides the total log-loss (in bits) by the UTF-8 size of the text, so models
with different tokenizers can be compared on the same text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lmlab.data.batches import eval_windows
from lmlab.models import LanguageModel


@dataclass
class Score:
    loss: float  # mean negative log-likelihood per token, in nats
    tokens: int
    bytes_per_token: float | None = None

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def bits_per_byte(self) -> float | None:
        if not self.bytes_per_token:
            return None
        return self.loss / math.log(2) / self.bytes_per_token

    def as_dict(self, prefix: str = "") -> dict[str, float | int | None]:
        return {
            f"{prefix}loss": self.loss,
            f"{prefix}ppl": self.perplexity,
            f"{prefix}bpb": self.bits_per_byte,
            f"{prefix}tokens": self.tokens,
        }


@torch.inference_mode()
def window_loss(
    model: LanguageModel,
    tokens: np.ndarray,
    context: int,
    batch_size: int = 32,
    max_batches: int | None = None,
    autocast: torch.dtype | None = None,
) -> tuple[float, int]:
    """Mean loss over fixed non-overlapping windows (the cheap estimate used during training)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for x, y in eval_windows(tokens, context, batch_size, max_batches):
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(x)
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"
        )
        total += loss.item()
        count += y.numel()
    model.train(was_training)
    return total / max(1, count), count


@torch.inference_mode()
def stream_loss(
    model: LanguageModel, ids: np.ndarray, stride: int | None = None
) -> tuple[float, int]:
    """Exact mean loss of predicting ``ids[1:]`` from everything before, as far as the model
    can see: recurrent and n-gram models carry state across the whole stream; a Transformer
    slides its window with ``stride`` (default half the context), scoring only new tokens.
    """
    model.eval()
    score = getattr(model, "score", None)
    if callable(score) and len(ids) >= 2:
        # Count-based models score observed tokens directly (no full distributions).
        # ``score`` predicts its first token from <s>; a leading <eos> plays that part.
        ids = np.asarray(ids, dtype=np.int64)
        eos = getattr(model.config, "eos_id", None)
        logp10 = score(ids[1:]) if ids[0] == eos else score(ids)[1:]
        return float(-np.mean(logp10) * math.log(10)), len(ids) - 1
    device = next(iter(model.parameters()), torch.empty(0)).device
    ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=device)
    n = len(ids_t)
    if n < 2:
        return 0.0, 0
    ctx = model.context_length
    total = 0.0
    if ctx is None:
        state = model.new_state(1, device)
        chunk = 1024
        for s in range(0, n - 1, chunk):
            x = ids_t[s : min(s + chunk, n - 1)][None]
            y = ids_t[s + 1 : s + 1 + x.shape[1]]
            logits = model(x, state)[0]
            total += F.cross_entropy(logits.float(), y, reduction="sum").item()
        return total / (n - 1), n - 1
    stride = stride or max(1, ctx // 2)
    scored = 0  # targets ids[1..scored] are done
    begin = 0
    while scored < n - 1:
        end = min(begin + ctx, n - 1)  # inputs ids[begin:end], targets ids[begin+1:end+1]
        logits = model(ids_t[begin:end][None])[0]
        targets = ids_t[begin + 1 : end + 1]
        new_from = scored - begin  # positions before this were scored by an earlier window
        total += F.cross_entropy(
            logits[new_from:].float(), targets[new_from:], reduction="sum"
        ).item()
        scored = end
        begin = min(begin + stride, max(0, n - 1 - ctx)) if end < n - 1 else end
    return total / (n - 1), n - 1
