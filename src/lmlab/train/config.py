"""Training settings: one dataclass, stored as the ``[train]`` section of ``config.toml``."""

from __future__ import annotations

from dataclasses import dataclass

from lmlab.errors import LmlabError
from lmlab.train.precision import PRECISIONS


@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps
    batch_size: int = 32  # sequences per micro-step, summed over all processes
    context: int = 128  # tokens per training window
    grad_accum: int = 1  # micro-steps per optimizer step
    lr: float = 1e-3
    min_lr: float | None = None  # end of the cosine; default lr / 10
    warmup: int = 100
    weight_decay: float = 0.1  # on 2-D weights only
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 disables clipping
    eval_every: int = 250
    eval_batches: int | None = 50  # None: the whole validation split
    checkpoint_every: int = 250
    sample_every: int = 0  # 0: with every evaluation
    sample_tokens: int = 200
    log_every: int = 10
    seed: int = 1337
    precision: str = "fp32"  # "fp32" | "bf16" (autocast) | "auto" (bf16 where native)
    time_limit: float | None = None  # seconds; stop early when reached
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    threads: int | None = None  # CPU threads (default: all cores)
    compile: bool = False  # torch.compile the model (slow start, faster steps)
    # Recurrent models only: walk contiguous streams and carry the hidden state from one
    # batch to the next (truncated BPTT) instead of sampling independent windows.
    carry_state: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "context", "grad_accum", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise LmlabError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise LmlabError(f"train.lr must be positive, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise LmlabError(
                f"train.precision must be 'fp32', 'bf16' or 'auto', got {self.precision!r}"
            )
        if self.warmup < 0:
            raise LmlabError("train.warmup must be >= 0")

    @property
    def final_lr(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr
