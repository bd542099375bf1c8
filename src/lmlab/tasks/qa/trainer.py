"""Fine-tuning a span model: AdamW (the head at its own learning rate), warm-up + cosine,
clipping, bf16 autocast on CPU, validation F1 for model selection. With ``time_limit`` the
learning-rate schedule follows the time budget too (so a run stopped by time has decayed).
``negatives`` keeps a seeded share of the windows that do not hold the answer (a long
passage has many; they teach the "not here" slot but cost as much as the others).

The loss is the mean of two cross-entropies over each window's positions: the answer's
first token and its last token (position 0, the "not in this window" slot, for windows
without the answer); the question's tokens and the padding are masked out. Each validation
scores ``val_questions`` validation questions with the official metric (EM/F1), appends a
line to ``metrics.jsonl`` and, when F1 improves, saves the trainable weights atomically, so
an interrupted run (Ctrl-C, ``time_limit``) keeps its best model.

With frozen lower blocks (``freeze_layers``) their output never changes, so by default it is
computed once for every training window (bf16, in memory) and each step runs only the
trained blocks: later epochs cost a fraction of the first.
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
import torch.nn.functional as F
from tqdm import tqdm

from lmlab.errors import LmlabError
from lmlab.tasks.qa.data import QAExample
from lmlab.tasks.qa.infer import answer_examples, pad_batch
from lmlab.tasks.qa.metrics import score_answers
from lmlab.tasks.qa.model import SpanModel
from lmlab.tasks.qa.windows import Window
from lmlab.tokenize import Tokenizer
from lmlab.train.loop import _StopRequest
from lmlab.train.schedule import lr_at

METRICS_FILE = "metrics.jsonl"


@dataclass
class QATrainConfig:
    epochs: float = 2.0
    batch_size: int = 16  # windows per optimizer step
    lr: float | None = None  # body (or adapters); default 5e-5 full, 5e-4 LoRA
    head_lr: float = 1e-3
    min_lr_ratio: float = 0.1  # end of the cosine, as a share of the peak
    warmup: int = 20  # optimizer steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 0  # steps between validations; 0: 4 per epoch
    val_questions: int = 300  # validation questions scored at each validation (0: all)
    max_questions: int | None = None  # train on the first N questions of a seeded shuffle
    test_questions: int | None = None  # score a seeded sample of the test split (default all)
    negatives: float = 1.0  # share of the windows without the answer that are trained on
    cache_frozen: bool = True  # compute the frozen blocks' output once (freeze_layers > 0)
    max_steps: int | None = None
    time_limit: float | None = None  # seconds of training
    seed: int = 1
    threads: int | None = None
    bf16: bool = True  # autocast to bfloat16 on CPU (about 10x float32 matmuls with AMX)
    n_boot: int = 1000

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1:
            raise LmlabError("train.epochs must be positive and train.batch_size at least 1")
        if self.lr is not None and self.lr <= 0 or self.head_lr <= 0:
            raise LmlabError("train.lr and train.head_lr must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            raise LmlabError("train.max_steps must be at least 1")
        if not 0.0 <= self.negatives <= 1.0:
            raise LmlabError(f"train.negatives must be in [0, 1], got {self.negatives}")
        if self.max_questions is not None and self.max_questions < 1:
            raise LmlabError("--max-questions must be at least 1")


@dataclass
class TrainOutcome:
    steps: int
    epochs: float
    elapsed: float
    best_step: int
    best_f1: float
    stopped: str
    tokens: int
    history: list[dict[str, Any]] = field(default_factory=list)
    cache_seconds: float = 0.0  # computing the frozen blocks' output, before the loop


def span_loss(logits: torch.Tensor, windows: list[Window]) -> torch.Tensor:
    """Mean start/end cross-entropy; only position 0 and the passage tokens can be chosen."""
    B, T, _ = logits.shape
    allowed = torch.zeros(B, T, dtype=torch.bool)
    for r, w in enumerate(windows):
        allowed[r, 0] = True
        allowed[r, w.passage_start : len(w.ids)] = True
    masked = logits.masked_fill(~allowed[:, :, None], float("-inf"))
    start = torch.tensor([w.start for w in windows])
    end = torch.tensor([w.end for w in windows])
    return (F.cross_entropy(masked[:, :, 0], start) + F.cross_entropy(masked[:, :, 1], end)) / 2


def train_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffled batches of similar lengths: pools of 32 batches sorted by length, cut, and
    the batches shuffled."""
    perm = rng.permutation(len(lengths))
    pool = batch_size * 32
    batches = []
    for s in range(0, len(perm), pool):
        chunk = perm[s : s + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def make_optimizer(model: SpanModel, cfg: QATrainConfig, lr: float) -> torch.optim.AdamW:
    head = list(model.qa.parameters())
    head_ids = {id(p) for p in head}
    decay, no_decay = [], []
    for p in model.body.parameters():
        if p.requires_grad and id(p) not in head_ids:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "peak": lr},
        {"params": no_decay, "weight_decay": 0.0, "peak": lr},
        {"params": head, "weight_decay": 0.0, "peak": cfg.head_lr},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def validate(model: SpanModel, tokenizer: Tokenizer, val: list[QAExample], task: dict[str, Any],
             metric: str) -> dict[str, float]:  # fmt: skip
    answers = answer_examples(model, tokenizer, val, task["max_len"], task["stride"],
                              max_answer_tokens=task["max_answer_tokens"],
                              n_best=task["n_best"])  # fmt: skip
    preds = [a[0]["text"] if a else "" for a in answers]
    rep = score_answers(preds, [e.answer_texts for e in val], metric, n_boot=0)
    return {"val_em": rep.em, "val_f1": rep.f1}


def train_span_model(
    model: SpanModel,
    tokenizer: Tokenizer,
    windows: list[Window],
    val: list[QAExample],
    task: dict[str, Any],
    cfg: QATrainConfig,
    lr: float,
    run_dir: Path,
    save: Callable[[int], None],
    metric: str,
    progress: bool = True,
) -> TrainOutcome:
    """Train on ``windows``; select by F1 on ``val``; ``save(step)`` writes the trainable
    weights (called on each improvement). The best weights are in ``model`` at the end."""
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(
            model, tokenizer, windows, val, task, cfg, lr, run_dir, save, metric, progress
        )
    finally:
        torch.set_num_threads(threads)


def frozen_cache(model: SpanModel, windows: list[Window], pad_id: int, bf16: bool,
                 say: Callable[[str], None], progress: bool) -> list[torch.Tensor]:  # fmt: skip
    """Each window's frozen-block output ``(len, d)`` in bf16 (inference mode, so without
    dropout)."""
    from lmlab.tasks.qa.infer import length_batches

    lengths = [len(w.ids) for w in windows]
    gb = sum(lengths) * model.body.config.d_model * 2 / 1e9
    say(f"computing the {model.freeze_layers} frozen blocks' output once for {len(windows):,} "
        f"windows ({sum(lengths):,} tokens, {gb:.2f} GB in bf16)")  # fmt: skip
    out: list[torch.Tensor] = [torch.empty(0)] * len(windows)
    was = model.training
    model.eval()
    bar = tqdm(total=sum(lengths), desc="frozen blocks", unit="tok", unit_scale=True,
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    with torch.inference_mode():
        for batch in length_batches(lengths, 4096):
            ids = pad_batch([windows[i].ids for i in batch], pad_id)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                x = model.frozen_features(ids).to(torch.bfloat16)
            for row, i in enumerate(batch):
                out[i] = x[row, : lengths[i]].clone()
            bar.update(sum(lengths[i] for i in batch))
    bar.close()
    model.train(was)
    return out


def pad_features(feats: list[torch.Tensor]) -> torch.Tensor:
    """Right-padded float32 ``(B, T, d)``, as the residual stream runs (zeros; the causal and
    the masked blocks never read them)."""
    T = max(f.shape[0] for f in feats)
    x = torch.zeros(len(feats), T, feats[0].shape[1])
    for r, f in enumerate(feats):
        x[r, : f.shape[0]] = f
    return x


def _snapshot(model: SpanModel) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}


def _train(model, tokenizer, windows, val, task, cfg, lr, run_dir, save, metric, progress):
    if not windows:
        raise LmlabError("no training window left (see the warnings above)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    lengths = np.array([len(w.ids) for w in windows])
    per_epoch = math.ceil(len(windows) / cfg.batch_size)
    total = max(1, round(cfg.epochs * per_epoch))
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    eval_every = cfg.eval_every or max(1, per_epoch // 4)
    opt = make_optimizer(model, cfg, lr)
    params = [p for p in model.parameters() if p.requires_grad]
    pad = tokenizer.eos_id
    best_f1, best_step, best_state = -1.0, 0, _snapshot(model)
    history: list[dict[str, Any]] = []
    stopped, step, tokens = "finished", 0, 0
    loss_sum, loss_n = 0.0, 0
    t0 = time.perf_counter()
    interactive = progress and sys.stderr.isatty()
    say = (lambda s: tqdm.write(s, file=sys.stderr)) if progress else (lambda s: None)
    feats, cache_s = None, 0.0
    if cfg.cache_frozen and model.freeze_layers > 0:  # time_limit counts from after this
        feats = frozen_cache(model, windows, pad, cfg.bf16, say, interactive)
        cache_s = time.perf_counter() - t0
        say(f"frozen blocks computed in {cache_s:.1f} s")
        t0 = time.perf_counter()
    bar = tqdm(total=total, desc="train", unit="step", disable=not interactive, dynamic_ncols=True)
    model.train()
    with _StopRequest() as stop:
        while step < total and stopped == "finished":
            for batch in train_batches(lengths, cfg.batch_size, rng):
                # with a time limit the cosine runs on the time budget (whichever ends first)
                at = step
                if cfg.time_limit:
                    at = max(step, int(total * (time.perf_counter() - t0) / cfg.time_limit))
                scale = lr_at(at, 1.0, cfg.min_lr_ratio, cfg.warmup, total)
                for g in opt.param_groups:
                    g["lr"] = g["peak"] * scale
                ws = [windows[i] for i in batch]
                n = torch.tensor([len(w.ids) for w in ws])
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                    if feats is not None:
                        logits = model.from_features(pad_features([feats[i] for i in batch]), n)
                    else:
                        logits = model(pad_batch([w.ids for w in ws], pad), n)
                loss = span_loss(logits.float(), ws)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                step += 1
                tokens += int(sum(len(w.ids) for w in ws))
                loss_sum, loss_n = loss_sum + float(loss.item()), loss_n + 1
                elapsed = time.perf_counter() - t0
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / loss_n:.3f}", tok_s=f"{tokens / elapsed:.0f}")
                out_of_time = cfg.time_limit is not None and elapsed >= cfg.time_limit
                last = step >= total or out_of_time or stop.requested
                if step % eval_every == 0 or last:
                    rec = {"step": step, "epoch": round(step / per_epoch, 3),
                           "train_loss": loss_sum / max(1, loss_n), "lr": lr * scale,
                           "tokens_per_s": round(tokens / elapsed, 1),
                           **validate(model, tokenizer, val, task, metric),
                           "elapsed": round(time.perf_counter() - t0, 2)}  # fmt: skip
                    loss_sum, loss_n = 0.0, 0
                    history.append(rec)
                    with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
                        f.write(json.dumps(rec) + "\n")
                    improved = rec["val_f1"] > best_f1
                    if improved:
                        best_f1, best_step, best_state = rec["val_f1"], step, _snapshot(model)
                        save(step)
                    say(f"step {step:>5} epoch {rec['epoch']:5.2f}  train loss {rec['train_loss']:.4f}  "
                        f"val EM {rec['val_em']:.2f} F1 {rec['val_f1']:.2f}  "
                        f"{rec['tokens_per_s']:.0f} tok/s{'  *' if improved else ''}")  # fmt: skip
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
    with torch.no_grad():
        named = dict(model.named_parameters())
        for k, v in best_state.items():
            named[k].copy_(v)
    model.eval()
    return TrainOutcome(step, step / per_epoch, time.perf_counter() - t0, best_step, best_f1,
                        stopped, tokens, history, cache_s)  # fmt: skip
