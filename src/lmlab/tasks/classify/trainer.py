"""Training a classifier: AdamW, warm-up + cosine, clipping, evaluation on the validation
split, model selection and early stopping, the best weights kept in ``model.safetensors``.

Each evaluation appends a line to ``metrics.jsonl`` (step, epoch, training loss since the
last evaluation, validation loss, accuracy and macro-F1); when the selection metric improves
the weights are written atomically, so an interrupted run (Ctrl-C, ``time_limit``) still
leaves its best model. Training stops after ``patience`` evaluations without improvement.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lmlab.errors import LmlabError
from lmlab.run import MODEL_FILE, save_tensors_atomic
from lmlab.tasks.classify.batches import eval_batches, pad, train_batches
from lmlab.tasks.classify.models import Classifier
from lmlab.tasks.metrics import accuracy, macro_f1
from lmlab.train.loop import _StopRequest, make_optimizer
from lmlab.train.schedule import lr_at

METRICS_FILE = "metrics.jsonl"
SELECT = ("accuracy", "macro_f1")


@dataclass
class ClassifyTrainConfig:
    epochs: int = 10
    batch_size: int = 50
    lr: float = 1e-3
    min_lr: float | None = None  # end of the cosine; default lr / 10
    warmup: int = 0  # optimizer steps
    weight_decay: float = 0.0  # on 2-D weights only
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 5.0  # 0 disables clipping
    eval_every: int = 0  # optimizer steps between evaluations; 0: once per epoch
    patience: int = 3  # evaluations without improvement before stopping; 0: never stop early
    select: str = "accuracy"  # accuracy | macro_f1 on the validation split
    max_len: int = 256  # tokens per text; longer texts are cut (and counted)
    max_steps: int | None = None  # stop after this many optimizer steps
    time_limit: float | None = None  # seconds
    seed: int = 1
    threads: int | None = None  # CPU threads (default: torch's)
    n_boot: int = 1000  # bootstrap resamples for the reported intervals
    max_train: int | None = None  # train on a seeded, stratified sample of this many texts
    max_validation: int | None = None  # select on a seeded, stratified sample of the validation
    # train and select only on texts of at least this many whitespace-separated words (SST-2's
    # training phrases include every whole sentence, and whole sentences are what it scores)
    min_words: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_len"):
            if getattr(self, name) < 1:
                raise LmlabError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise LmlabError(f"train.lr must be positive, got {self.lr}")
        if self.select not in SELECT:
            raise LmlabError(f"train.select must be accuracy or macro_f1, got {self.select!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise LmlabError("train.max_steps must be at least 1")
        if self.min_words < 0:
            raise LmlabError(f"train.min_words must be 0 or more, got {self.min_words}")
        for name in ("max_train", "max_validation"):
            if getattr(self, name) is not None and getattr(self, name) < 2:
                raise LmlabError(f"train.{name} must be at least 2, got {getattr(self, name)}")

    @property
    def final_lr(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr


@dataclass
class TrainOutcome:
    steps: int
    epochs: float
    elapsed: float
    best_step: int
    best: dict[str, float]
    stopped: str  # "finished" | "early stopping" | "time limit" | "max steps" | "interrupted"
    history: list[dict[str, Any]] = field(default_factory=list)


@torch.inference_mode()
def predict_logits(model: Classifier, seqs: list[np.ndarray], batch_size: int = 128) -> np.ndarray:
    """Logits ``(N, C)`` for encoded texts, in their order (eval mode, batched by length)."""
    was_training = model.training
    model.eval()
    out = np.zeros((len(seqs), model.config.n_classes), dtype=np.float32)
    lengths = np.array([len(s) for s in seqs])
    for idx in eval_batches(lengths, batch_size):
        ids, mask = pad([seqs[i] for i in idx], model.pad_id, model.min_length)
        out[idx] = model(ids, mask).float().numpy()
    model.train(was_training)
    return out


def _val_scores(model: Classifier, seqs, y: np.ndarray, batch_size: int) -> dict[str, float]:
    logits = predict_logits(model, seqs, batch_size)
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item())
    pred = logits.argmax(1)
    return {
        "val_loss": loss,
        "val_accuracy": accuracy(y, pred),
        "val_macro_f1": macro_f1(y, pred, model.config.n_classes),
    }


def _snapshot(model: Classifier) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.weights().items()}


def train_classifier(
    model: Classifier,
    train: tuple[list[np.ndarray], np.ndarray],
    val: tuple[list[np.ndarray], np.ndarray],
    cfg: ClassifyTrainConfig,
    run_dir: Path,
    progress: bool = True,
) -> TrainOutcome:
    """Train ``model`` on encoded ``train`` texts and label ids; select on ``val``. The best
    weights are loaded back into ``model`` at the end."""
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(model, train, val, cfg, run_dir, progress)
    finally:
        torch.set_num_threads(threads)


def _train(
    model, train, val, cfg: ClassifyTrainConfig, run_dir: Path, progress: bool
) -> TrainOutcome:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    seqs, y = train
    y_t = torch.from_numpy(np.asarray(y, dtype=np.int64))
    lengths = np.array([len(s) for s in seqs])
    per_epoch = math.ceil(len(seqs) / cfg.batch_size)
    total = cfg.epochs * per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    eval_every = cfg.eval_every or per_epoch
    opt = make_optimizer(model, SimpleNamespace(lr=cfg.lr, weight_decay=cfg.weight_decay,
                                                beta1=cfg.beta1, beta2=cfg.beta2))  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    metrics_path = run_dir / METRICS_FILE
    key = f"val_{cfg.select}"
    best: dict[str, float] = {}
    best_state, best_step, bad_evals = _snapshot(model), 0, 0
    history: list[dict[str, Any]] = []
    stopped = "finished"
    loss_sum, loss_n, step = 0.0, 0, 0
    t0 = time.perf_counter()
    interactive = progress and sys.stderr.isatty()
    bar = tqdm(total=total, desc="train", unit="step", disable=not interactive, dynamic_ncols=True)
    say = (lambda s: tqdm.write(s, file=sys.stderr)) if progress else (lambda s: None)
    model.train()
    with _StopRequest() as stop:
        while step < total and stopped == "finished":
            for batch in train_batches(lengths, cfg.batch_size, rng):
                lr = lr_at(step, cfg.lr, cfg.final_lr, cfg.warmup, total)
                for g in opt.param_groups:
                    g["lr"] = lr
                ids, mask = pad([seqs[i] for i in batch], model.pad_id, model.min_length)
                loss = F.cross_entropy(model(ids, mask), y_t[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                step += 1
                loss_sum += float(loss.item())
                loss_n += 1
                bar.update(1)
                elapsed = time.perf_counter() - t0
                out_of_time = cfg.time_limit is not None and elapsed >= cfg.time_limit
                last = step >= total or out_of_time or stop.requested
                if step % eval_every == 0 or last:
                    rec = {"step": step, "epoch": round(step / per_epoch, 3),
                           "train_loss": loss_sum / max(1, loss_n), "lr": lr,
                           **_val_scores(model, *val, cfg.batch_size * 2),
                           "elapsed": round(time.perf_counter() - t0, 2)}  # fmt: skip
                    loss_sum, loss_n = 0.0, 0
                    history.append(rec)
                    with open(metrics_path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(rec) + "\n")
                    improved = not best or rec[key] > best[key]
                    if improved:
                        best = {k: rec[k] for k in ("val_loss", "val_accuracy", "val_macro_f1")}
                        best_state, best_step, bad_evals = _snapshot(model), step, 0
                        save_tensors_atomic(best_state, run_dir / MODEL_FILE, {"step": str(step)})
                    else:
                        bad_evals += 1
                    say(f"step {step:>6} epoch {rec['epoch']:5.2f}  train loss {rec['train_loss']:.4f}  "
                        f"val loss {rec['val_loss']:.4f} acc {rec['val_accuracy']:.4f} "
                        f"macro-F1 {rec['val_macro_f1']:.4f}{'  *' if improved else ''}")  # fmt: skip
                    bar.set_postfix(val_acc=f"{rec['val_accuracy']:.4f}")
                    if cfg.patience and bad_evals >= cfg.patience:
                        stopped = "early stopping"
                if stop.requested:
                    stopped = "interrupted"
                elif out_of_time:
                    stopped = "time limit"
                elif step >= total and cfg.max_steps is not None and total == cfg.max_steps:
                    stopped = "max steps" if total < cfg.epochs * per_epoch else stopped
                if stopped != "finished" or step >= total:
                    break
    bar.close()
    model.load_weights(best_state)
    model.eval()
    return TrainOutcome(
        step, step / per_epoch, time.perf_counter() - t0, best_step, best, stopped, history
    )
