"""Training a translation model: length-bucketed batches, label-smoothed cross-entropy,
AdamW with warm-up and a cosine that follows the step or time budget, bfloat16 autocast on
CPU, validation loss for model selection, the best weights written atomically.

Each validation appends a line to ``metrics.jsonl`` (step, epoch, seconds, training loss
since the last validation, validation loss and perplexity); when the validation loss
improves ``model.safetensors`` is replaced, so an interrupted run keeps its best model.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lmlab.errors import LmlabError
from lmlab.run import MODEL_FILE, save_tensors_atomic
from lmlab.train.loop import _StopRequest

METRICS_FILE = "metrics.jsonl"


@dataclass
class TranslateTrainConfig:
    epochs: int = 100
    batch_size: int = 96  # sentence pairs per step
    lr: float = 1e-3
    min_lr: float | None = None  # end of the cosine; default lr / 20
    warmup: int = 300  # optimizer steps
    weight_decay: float = 0.01
    beta2: float = 0.98
    grad_clip: float = 1.0
    label_smoothing: float = 0.1
    eval_every: int = 400  # steps between validations
    patience: int = 0  # validations without improvement before stopping; 0: never
    max_len: int = 64  # tokens kept per sentence (longer ones are cut and counted)
    max_steps: int | None = None
    time_limit: float | None = None  # seconds of training (validation included)
    seed: int = 1
    threads: int | None = None
    bf16: bool = True  # bfloat16 autocast on CPU (AMX/AVX-512 matmuls)
    beam: int = 5  # final evaluation: beam width
    alpha: float = 1.0  # final evaluation: length penalty

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_len", "eval_every", "beam"):
            if getattr(self, name) < 1:
                raise LmlabError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise LmlabError(f"train.lr must be positive, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            raise LmlabError("train.label_smoothing must be in [0, 1)")

    @property
    def final_lr(self) -> float:
        return self.lr / 20 if self.min_lr is None else self.min_lr


@dataclass
class TrainOutcome:
    steps: int
    epochs: float
    elapsed: float
    best_step: int
    best_loss: float
    stopped: str
    tokens_per_second: float


def make_batch(src: list[np.ndarray], tgt: list[np.ndarray] | None, bos: int, eos: int):
    """Padded tensors: ``src`` ``(B, S)`` and its mask; with targets, the decoder input
    (``bos`` + target) and output (target + ``eos``, ``-100`` at padding)."""
    B, S = len(src), max(len(s) for s in src)
    x = torch.full((B, S), eos, dtype=torch.long)
    mask = torch.zeros(B, S, dtype=torch.bool)
    for i, s in enumerate(src):
        x[i, : len(s)] = torch.from_numpy(s)
        mask[i, : len(s)] = True
    if tgt is None:
        return x, mask
    T = max(len(t) for t in tgt) + 1
    y_in = torch.full((B, T), eos, dtype=torch.long)
    y_out = torch.full((B, T), -100, dtype=torch.long)
    for i, t in enumerate(tgt):
        tt = torch.from_numpy(t)
        y_in[i, 0], y_in[i, 1 : len(t) + 1] = bos, tt
        y_out[i, : len(t)], y_out[i, len(t)] = tt, eos
    return x, mask, y_in, y_out


def bucketed(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar-length pairs: shuffle, sort within pools of 50 batches, cut,
    shuffle the batches (less padding than random batches, still a fresh order each epoch)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = 50 * batch_size
    batches = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i : i + pool], key=lambda j: lengths[j])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def validation_loss(model, src, tgt, bos, eos, bf16: bool, batch_size: int = 128) -> float:
    """Mean per-token cross-entropy (no smoothing) of the targets given the sources."""
    model.eval()
    total, n = 0.0, 0
    order = sorted(range(len(src)), key=lambda i: len(src[i]))
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        x, m, yi, yo = make_batch([src[i] for i in idx], [tgt[i] for i in idx], bos, eos)
        with _autocast(bf16):
            logits = model(x, m, yi)
        total += float(F.cross_entropy(logits.float().flatten(0, 1), yo.flatten(),
                                       ignore_index=-100, reduction="sum"))  # fmt: skip
        n += int((yo != -100).sum())
    return total / max(n, 1)


def train_translator(
    model, train: tuple[list, list], valid: tuple[list, list], cfg: TranslateTrainConfig,
    out: Path, bos: int, eos: int, progress: bool = True,
    on_validate: Callable[[Any], dict[str, float]] | None = None, select: str | None = None,
) -> TrainOutcome:  # fmt: skip
    """Train ``model``; keep the weights of the best validation. ``on_validate(model)``
    adds scores of its own to each validation record (summarisation: ROUGE-L of greedy
    summaries); ``select`` names one of them (higher is better) to choose the best model by
    instead of the validation loss."""
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(model, train, valid, cfg, out, bos, eos, progress, on_validate, select)
    finally:
        torch.set_num_threads(threads)


def _train(model, train, valid, cfg, out, bos, eos, progress, on_validate=None,
           select=None) -> TrainOutcome:  # fmt: skip
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    src, tgt = train
    lengths = [max(len(s), len(t)) for s, t in zip(src, tgt, strict=True)]
    steps_per_epoch = math.ceil(len(src) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    decay, no_decay = [], []
    for p in {id(p): p for p in model.parameters()}.values():
        (decay if p.dim() >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, cfg.beta2),
    )  # fmt: skip
    metrics = (out / METRICS_FILE).open("a", encoding="utf-8")
    bar = tqdm(total=total, disable=not progress, unit="step", file=sys.stderr,
               dynamic_ncols=True, desc="train")  # fmt: skip
    start = time.perf_counter()
    step, best, best_step, stale, stopped = 0, float("inf"), 0, 0, "finished"
    best_loss = float("inf")
    seen_tokens, run_loss, run_n = 0, 0.0, 0
    batches: list[list[int]] = []
    with _StopRequest() as stop:
        while step < total:
            if not batches:
                batches = bucketed(lengths, cfg.batch_size, rng)
            idx = batches.pop()
            elapsed = time.perf_counter() - start
            frac = step / total
            if cfg.time_limit:
                frac = max(frac, elapsed / cfg.time_limit)
            if cfg.warmup and step < cfg.warmup:
                lr = cfg.lr * (step + 1) / cfg.warmup
            else:
                lr = cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (
                    1 + math.cos(math.pi * min(frac, 1.0))
                )
            for g in opt.param_groups:
                g["lr"] = lr
            model.train()
            x, m, yi, yo = make_batch([src[i] for i in idx], [tgt[i] for i in idx], bos, eos)
            with _autocast(cfg.bf16):
                logits = model(x, m, yi)
            loss = F.cross_entropy(logits.float().flatten(0, 1), yo.flatten(), ignore_index=-100,
                                   label_smoothing=cfg.label_smoothing)  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            lv = float(loss.detach())
            seen_tokens += int(m.sum()) + int((yo != -100).sum())
            run_loss += lv
            run_n += 1
            elapsed = time.perf_counter() - start
            bar.update(1)
            bar.set_postfix(loss=f"{lv:.3f}", lr=f"{lr:.1e}",
                            tok_s=f"{seen_tokens / max(elapsed, 1e-9):,.0f}")  # fmt: skip
            out_of_time = cfg.time_limit is not None and elapsed >= cfg.time_limit
            if step % cfg.eval_every == 0 or step == total or out_of_time or stop.requested:
                vloss = validation_loss(model, *valid, bos, eos, cfg.bf16)
                rec = {"step": step, "epoch": round(step / steps_per_epoch, 3),
                       "seconds": round(time.perf_counter() - start, 1),
                       "train_loss": round(run_loss / max(run_n, 1), 4),
                       "valid_loss": round(vloss, 4), "valid_ppl": round(math.exp(vloss), 3),
                       "lr": lr}  # fmt: skip
                extra = on_validate(model) if on_validate else {}
                rec.update(extra)
                run_loss, run_n = 0.0, 0
                metrics.write(json.dumps(rec) + "\n")
                metrics.flush()
                bar.write(f"step {step:,} epoch {rec['epoch']:.2f}: train loss "
                          f"{rec['train_loss']:.3f}, validation loss {vloss:.3f} "
                          f"(ppl {rec['valid_ppl']:.2f})"
                          + "".join(f", {k} {v}" for k, v in extra.items()))  # fmt: skip
                crit = -float(extra[select]) if select else vloss  # select: higher is better
                if crit < best:
                    best, best_loss, best_step, stale = crit, vloss, step, 0
                    save_tensors_atomic(model.tensors_for_save(), out / MODEL_FILE)
                else:
                    stale += 1
                    if cfg.patience and stale >= cfg.patience:
                        stopped = f"stopped early ({cfg.patience} validations without improvement)"
                        break
            if out_of_time:
                stopped = f"time limit ({cfg.time_limit:.0f} s)"
                break
            if stop.requested:
                stopped = "interrupted"
                break
    bar.close()
    metrics.close()
    elapsed = time.perf_counter() - start
    return TrainOutcome(step, step / steps_per_epoch, elapsed, best_step, best_loss, stopped,
                        seen_tokens / max(elapsed, 1e-9))  # fmt: skip
