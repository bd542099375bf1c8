"""Supervised chat fine-tuning: AdamW, warm-up + cosine (on the time budget too, with
``time_limit``), clipping, bf16 autocast on CPU, loss on the assistant's tokens only
(:mod:`lmlab.tasks.chat.loss`). Each validation measures the held-out response perplexity,
appends a line to ``metrics.jsonl`` and, when it improves, calls ``save(step)``, so the run
directory always holds the best weights (an interrupted run keeps them too).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lmlab.errors import LmlabError
from lmlab.tasks.chat.loss import Encoded, pad, response_loss, response_nll
from lmlab.train.loop import _StopRequest
from lmlab.train.schedule import lr_at

METRICS_FILE = "metrics.jsonl"
EVALS_PER_LIMIT = 6  # validations in a time-limited run when eval_every is not set


@dataclass
class ChatTrainConfig:
    epochs: float = 1.0
    batch_size: int = 8  # conversations per optimizer step
    lr: float | None = None  # default 5e-5 full, 5e-4 LoRA
    min_lr_ratio: float = 0.1
    warmup: int = 20
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 0  # steps between validations; 0: 4 an epoch (or 6 in a time limit)
    val_conversations: int = 0  # validation conversations measured (0: all)
    max_conversations: int | None = None  # train on a seeded sample of this many
    max_steps: int | None = None
    time_limit: float | None = None  # seconds of training
    seed: int = 1
    threads: int | None = None
    bf16: bool = True

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1:
            raise LmlabError("train.epochs must be positive and train.batch_size at least 1")
        if self.lr is not None and self.lr <= 0:
            raise LmlabError("train.lr must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            raise LmlabError("--max-steps must be at least 1")
        if self.time_limit is not None and self.time_limit <= 0:
            raise LmlabError("--time-limit must be positive")
        if self.max_conversations is not None and self.max_conversations < 1:
            raise LmlabError("--max-conversations must be at least 1")


@dataclass
class TrainOutcome:
    steps: int
    epochs: float
    elapsed: float
    best_step: int
    best_val_loss: float
    start_val_loss: float
    stopped: str
    tokens: int
    history: list[dict[str, Any]] = field(default_factory=list)
    eval_seconds: float = 0.0  # of ``elapsed``, spent validating


def train_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list:
    """Shuffled batches of similar lengths (pools of 32 batches sorted by length)."""
    perm = rng.permutation(len(lengths))
    pool = batch_size * 32
    batches = []
    for s in range(0, len(perm), pool):
        chunk = perm[s : s + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def make_optimizer(model: torch.nn.Module, cfg: ChatTrainConfig, lr: float):
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]  # fmt: skip
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def train_chat(
    model,
    train: list[Encoded],
    val: list[Encoded],
    pad_id: int,
    cfg: ChatTrainConfig,
    lr: float,
    run_dir: Path,
    save: Callable[[int], None],
    progress: bool = True,
) -> TrainOutcome:
    """Train ``model`` on ``train``, select by response loss on ``val``; ``save(step)`` is
    called on each improvement (and once before training, so the base is the fallback)."""
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(model, train, val, pad_id, cfg, lr, run_dir, save, progress)
    finally:
        torch.set_num_threads(threads)


def _eta(step: int, total: int, elapsed: float, limit: float | None) -> str:
    left = elapsed / max(step, 1) * (total - step)
    if limit is not None:
        left = min(left, max(0.0, limit - elapsed))
    m, s = divmod(int(left), 60)
    return f"{m}:{s:02d}"


def _train(model, train, val, pad_id, cfg, lr, run_dir, save, progress):
    if not train:
        raise LmlabError("no training conversation left (see the warnings above)")
    if not val:
        raise LmlabError("no validation conversation left (see the warnings above)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    lengths = np.array([len(e.ids) for e in train])
    per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = max(1, round(cfg.epochs * per_epoch))
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    eval_every = cfg.eval_every or max(1, per_epoch // 4)
    eval_seconds = (
        cfg.time_limit / EVALS_PER_LIMIT if cfg.time_limit and not cfg.eval_every else None
    )
    opt = make_optimizer(model, cfg, lr)
    params = [p for p in model.parameters() if p.requires_grad]
    say = (lambda s: tqdm.write(s, file=sys.stderr)) if progress else (lambda s: None)
    history: list[dict[str, Any]] = []

    eval_time = [0.0]  # seconds spent validating (left out of the training tokens/s)

    def validate(step: int, rec: dict[str, Any]) -> float:
        t = time.perf_counter()
        loss, n = response_loss(model, val, pad_id, cfg.batch_size, cfg.bf16)
        eval_time[0] += time.perf_counter() - t
        rec.update(val_loss=round(loss, 5), val_ppl=round(math.exp(min(loss, 50)), 4),
                   val_tokens=n)  # fmt: skip
        history.append(rec)
        with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        return loss

    start_loss = validate(0, {"step": 0, "epoch": 0.0, "elapsed": 0.0})
    eval_time[0] = 0.0  # before the clock starts
    save(0)
    say(f"step     0  validation response perplexity {math.exp(start_loss):.3f} (the base)")
    best_loss, best_step = start_loss, 0
    stopped, step, tokens, targets = "finished", 0, 0, 0
    loss_sum, loss_n = 0.0, 0
    t0 = time.perf_counter()
    next_eval_t = eval_seconds
    bar = tqdm(total=total, desc="train", unit="step", dynamic_ncols=True,
               disable=not (progress and sys.stderr.isatty()))  # fmt: skip
    model.train()
    with _StopRequest() as stop:
        while step < total and stopped == "finished":
            for batch in train_batches(lengths, cfg.batch_size, rng):
                at = step
                if cfg.time_limit:  # the cosine ends with whichever budget ends first
                    at = max(step, int(total * (time.perf_counter() - t0) / cfg.time_limit))
                scale = lr_at(at, 1.0, cfg.min_lr_ratio, cfg.warmup, total)
                for g in opt.param_groups:
                    g["lr"] = lr * scale
                items = [train[i] for i in batch]
                ids, mask = pad(items, pad_id)
                nll, n = response_nll(model, ids, mask, cfg.bf16)
                loss = nll / max(n, 1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                step += 1
                tokens += int(sum(len(e.ids) for e in items))
                targets += n
                loss_sum, loss_n = loss_sum + float(nll.detach()), loss_n + n
                elapsed = time.perf_counter() - t0
                bar.update(1)
                tok_s = tokens / max(elapsed - eval_time[0], 1e-9)
                bar.set_postfix_str(f"loss {loss_sum / max(loss_n, 1):.3f}, "
                                    f"{tok_s:.0f} tok/s, "
                                    f"ETA {_eta(step, total, elapsed, cfg.time_limit)}")  # fmt: skip
                out_of_time = cfg.time_limit is not None and elapsed >= cfg.time_limit
                last = step >= total or out_of_time or stop.requested
                due = (step % eval_every == 0) if eval_seconds is None else elapsed >= next_eval_t
                if due or last:
                    if eval_seconds is not None:
                        next_eval_t = (int(elapsed / eval_seconds) + 1) * eval_seconds
                    rec = {"step": step, "epoch": round(step / per_epoch, 3),
                           "train_loss": round(loss_sum / max(1, loss_n), 5),
                           "lr": lr * scale, "tokens_per_s": round(tok_s, 1),
                           "elapsed": round(elapsed, 2)}  # fmt: skip
                    loss_sum, loss_n = 0.0, 0
                    v = validate(step, rec)
                    improved = v < best_loss
                    if improved:
                        best_loss, best_step = v, step
                        save(step)
                    say(f"step {step:>5} epoch {rec['epoch']:5.2f}  train loss "
                        f"{rec['train_loss']:.4f}  validation loss {v:.4f} (perplexity "
                        f"{math.exp(v):.3f})  {rec['tokens_per_s']:.0f} tok/s"
                        f"{'  *' if improved else ''}")  # fmt: skip
                    model.train()
                if stop.requested:
                    stopped = "interrupted"
                elif out_of_time:
                    stopped = "time limit"
                elif step >= total and cfg.max_steps is not None and total == cfg.max_steps:
                    stopped = "max steps"
                if stopped != "finished" or step >= total:
                    break
    bar.close()
    model.eval()
    return TrainOutcome(step, step / per_epoch, time.perf_counter() - t0, best_step, best_loss,
                        start_loss, stopped, tokens, history, eval_time[0])  # fmt: skip
