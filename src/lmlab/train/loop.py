"""The training loop shared by every gradient-trained model family.

AdamW (decay on 2-D weights only), warm-up + cosine, clipping, accumulation, periodic
evaluation and samples, ``metrics.jsonl``, atomic checkpoints, exact ``--resume``,
Ctrl-C/SIGTERM leaving a resumable checkpoint, and DDP when started by ``torchrun``.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from lmlab.data.batches import sample_batch, stream_batch
from lmlab.data.shards import Dataset
from lmlab.errors import LmlabError
from lmlab.evaluate.perplexity import Score, window_loss
from lmlab.evaluate.unknown import validation_unk_charge, window_unk_count
from lmlab.generate import SamplingParams, generate
from lmlab.models import LanguageModel
from lmlab.progress import progress_bar
from lmlab.train import distributed as ddp
from lmlab.train import precision
from lmlab.train.checkpoint import load_checkpoint, save_checkpoint
from lmlab.train.config import TrainConfig
from lmlab.train.schedule import lr_at

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.txt"


@dataclass
class TrainResult:
    step: int
    interrupted: bool
    elapsed: float
    tokens_seen: int
    final: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "fp32"  # as computed ("auto" resolved)
    start: int = 0  # the step training started (or resumed) from
    already_complete: bool = False  # resumed a run that had reached its steps: nothing done


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (>= 2-D) only, never on biases and norms."""
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs: dict[str, Any] = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2)}
    with contextlib.suppress(TypeError, RuntimeError):
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)


class Objective(Protocol):
    """A training objective other than next-token cross-entropy on random windows (e.g.
    distillation, :mod:`lmlab.distill`): where each batch comes from and what loss it gets.

    ``batch`` returns inputs, targets and a tuple of extra per-row tensors (sliced and moved
    like the inputs); ``loss`` turns the model's logits into the loss to minimise;
    ``log_fields`` returns extra figures for the next ``metrics.jsonl`` training record.
    Validation is unchanged: cross-entropy on the validation split.
    """

    def batch(
        self, rng: np.random.Generator, batch_size: int, context: int
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]: ...

    def loss(
        self, logits: torch.Tensor, targets: torch.Tensor, extra: tuple[torch.Tensor, ...]
    ) -> torch.Tensor: ...

    def log_fields(self) -> dict[str, float]: ...


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handlers
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One JSON line; a non-finite number is written as null (JSON has no NaN)."""
    clean = {k: _finite_or_none(v) for k, v in record.items()}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(clean, allow_nan=False) + "\n")


def _weights_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.is_floating_point())


def diverged_message(
    what: str, step: int, last_saved: int | None, cfg: TrainConfig, run_dir: Path
) -> str:
    """The one-line error of a run whose loss or weights stopped being finite."""
    kept = (
        f"the checkpoint of step {last_saved} in {run_dir} is kept"
        if last_saved
        else "no checkpoint was saved"
    )
    return (
        f"training diverged: {what} at step {step}; stopped without saving it ({kept}). "
        f"Start again with a lower --lr (now {cfg.lr:g}), a longer warm-up or --precision fp32"
    )


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop records logged after the checkpoint (they will be redone)."""
    if not path.is_file():
        return
    keep = [
        ln
        for ln in path.read_text(encoding="utf-8").splitlines()
        if ln.strip() and json.loads(ln).get("step", 0) <= step
    ]
    path.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")


def train(
    model: LanguageModel,
    data: Dataset,
    cfg: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    dist: ddp.DistInfo | None = None,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[int], bool] | None = None,
    progress: bool = True,
    weights: Any = None,
    announce: bool = False,
    objective: Objective | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` into ``run_dir`` (config and tokenizer already saved there).

    ``should_stop(step)`` lets a caller (a sweep with a budget, a test) end training early
    as an interruption would: a resumable checkpoint is written and ``interrupted`` is set.
    ``weights`` says which weights a checkpoint holds (default: all of them; a LoRA run
    passes :class:`lmlab.train.lora.LoraWeights`). ``announce`` prints the step a resumed
    run continues from. Resuming a run that already reached ``cfg.steps`` does nothing and
    says so (``already_complete``); nothing is appended to its metrics. ``objective``
    replaces the random windows and the cross-entropy of each training step (see
    :class:`Objective`).
    """
    dist = dist or ddp.DistInfo()
    device = ddp.pick_device(cfg.device, dist)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model.to(device)
    opt = make_optimizer(model, cfg)
    start = 0
    metrics_path = run_dir / METRICS_FILE
    if resume:
        start = load_checkpoint(run_dir, model, opt, rng, weights=weights)["step"]
        if start >= cfg.steps:
            return TrainResult(step=start, interrupted=False, elapsed=0.0, start=start,
                               tokens_seen=start * cfg.batch_size * cfg.context * cfg.grad_accum,
                               device=str(device), already_complete=True)  # fmt: skip
        if dist.is_main:
            _truncate_metrics(metrics_path, start)
            if announce:
                print(f"lmlab: resuming {run_dir} from step {start} of {cfg.steps}", flush=True)
    elif dist.is_main and metrics_path.exists():
        metrics_path.unlink()
    net: torch.nn.Module = model
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)
    autocast_dtype = precision.autocast_dtype(cfg.precision, device)
    rows = ddp.batch_slice(cfg.batch_size, dist)
    tokens_per_step = cfg.batch_size * cfg.context * cfg.grad_accum
    bpt = data.meta.val_bytes_per_token
    result = TrainResult(
        step=start,
        interrupted=False,
        elapsed=0.0,
        tokens_seen=start * tokens_per_step,
        start=start,
        device=str(device),
        precision="bf16" if autocast_dtype == torch.bfloat16 else "fp32",
    )
    sample_gen_every = cfg.sample_every or cfg.eval_every
    if objective is not None and (cfg.carry_state or model.computes_loss):
        raise LmlabError(f"a custom training objective needs a model that returns logits and "
                         f"no carry_state; the {model.family} model does not")  # fmt: skip
    if cfg.carry_state and model.context_length is not None:
        raise LmlabError(
            f"train.carry_state needs a recurrent model; the {model.family} family has a "
            "fixed context, so drop carry_state"
        )
    carried = None  # the state carried between batches (carry_state)

    unk, unk_bits_each = validation_unk_charge(data)  # word models: what an <unk> costs

    def evaluate(step: int) -> dict[str, Any]:
        """Validation loss; bits per byte charges each <unk> its spelling, as lmlab eval does."""
        bs = max(1, cfg.batch_size)
        loss, n = window_loss(model, data.val, cfg.context, bs, cfg.eval_batches, autocast_dtype)
        n_unk = (
            window_unk_count(data.val, cfg.context, bs, cfg.eval_batches, unk)
            if unk is not None
            else 0
        )
        score = Score(loss, n, bpt or None, n_unk, n_unk * unk_bits_each)
        rec = {
            "step": step,
            "val_loss": loss,
            "val_ppl": score.perplexity,
            "val_bpb": score.bits_per_byte,
            "val_tokens": n,
        }
        if unk is not None:  # the share of <unk>, and the model-only figure beside it
            rec["val_unk_rate"] = score.unk_rate
            rec["val_bpb_without_spelling"] = score.bits_per_byte_without_spelling
        if dist.is_main:
            _append_jsonl(metrics_path, rec)
        return rec

    def sample(step: int) -> None:
        if not dist.is_main or cfg.sample_tokens <= 0:
            return
        out = generate(
            model,
            data.tokenizer,
            "",
            SamplingParams(
                max_new_tokens=cfg.sample_tokens, temperature=0.8, top_k=40, seed=cfg.seed + step
            ),
        )[0].text
        with open(run_dir / SAMPLES_FILE, "a", encoding="utf-8") as f:
            f.write(f"--- step {step} ---\n{out}\n")
        model.train()

    last_saved = start if resume else None

    def checked_save(step: int) -> None:
        """A checkpoint, unless the weights hold NaN/Inf (the last good one is kept)."""
        nonlocal last_saved
        if not _weights_finite(model):
            raise LmlabError(
                diverged_message("the weights became NaN/Inf", step, last_saved, cfg, run_dir)
            )
        save_checkpoint(run_dir, model, opt, step, rng, weights=weights)
        last_saved = step

    model.train()
    t0 = time.perf_counter()
    last_t, last_step = t0, start
    bar = progress_bar(
        total=cfg.steps,
        initial=start,
        desc="train",
        unit="step",
        disable=not (dist.is_main and progress),
        dynamic_ncols=True,
    )
    step = start
    with _StopRequest() as stop:
        while step < cfg.steps:
            lr = lr_at(step, cfg.lr, cfg.final_lr, cfg.warmup, cfg.steps)
            for g in opt.param_groups:
                g["lr"] = lr
            loss_sum = 0.0
            for micro in range(cfg.grad_accum):
                if cfg.carry_state:
                    x, y, fresh = stream_batch(
                        data.train, cfg.batch_size, cfg.context, step * cfg.grad_accum + micro
                    )
                    if fresh or carried is None:
                        carried = model.new_state(x[rows].shape[0], device)
                    else:
                        carried.detach_()
                elif objective is not None:
                    x, y, extra = objective.batch(rng, cfg.batch_size, cfg.context)
                    extra = tuple(t[rows].to(device, non_blocking=True) for t in extra)
                else:
                    x, y = sample_batch(data.train, cfg.batch_size, cfg.context, rng)
                x, y = x[rows].to(device, non_blocking=True), y[rows].to(device, non_blocking=True)
                sync = (
                    contextlib.nullcontext()
                    if (not dist.enabled or micro == cfg.grad_accum - 1)
                    else net.no_sync()
                )
                with (
                    sync,
                    torch.autocast(
                        device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
                    ),
                ):
                    if model.computes_loss:  # e.g. adaptive softmax: no full distribution
                        loss = net(x, carried, targets=y)
                    elif objective is not None:
                        loss = objective.loss(net(x), y, extra)
                    else:
                        logits = net(x, carried)
                        loss = F.cross_entropy(
                            logits.float().reshape(-1, logits.size(-1)), y.reshape(-1)
                        )
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.item()
            train_loss = ddp.all_mean(loss_sum / cfg.grad_accum, dist)
            if not math.isfinite(train_loss):  # stop before the step spoils the weights
                raise LmlabError(
                    diverged_message(
                        f"the loss became {train_loss}", step + 1, last_saved, cfg, run_dir
                    )
                )
            if cfg.grad_clip > 0:
                norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
                if not math.isfinite(norm):
                    raise LmlabError(
                        diverged_message(
                            f"the gradient norm became {norm}", step + 1, last_saved, cfg, run_dir
                        )
                    )
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                tps = (step - last_step) * tokens_per_step / max(now - last_t, 1e-9)
                last_t, last_step = now, step
                if dist.is_main:
                    _append_jsonl(
                        metrics_path,
                        {
                            "step": step,
                            "loss": train_loss,
                            "lr": lr,
                            "tokens": step * tokens_per_step,
                            "elapsed": now - t0,
                            "tok_per_s": tps,
                            **(objective.log_fields() if objective is not None else {}),
                        },
                    )
                bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{lr:.1e}", tok_s=f"{tps:,.0f}")
            bar.update(1)
            if step % cfg.eval_every == 0 and step < cfg.steps:
                rec = evaluate(step)
                bar.write(f"step {step}: val loss {rec['val_loss']:.4f}, ppl {rec['val_ppl']:.2f}")
                if on_eval:
                    on_eval(rec)
                if step % sample_gen_every == 0:
                    sample(step)
            timed_out = cfg.time_limit is not None and time.perf_counter() - t0 >= cfg.time_limit
            asked = stop.requested or (should_stop is not None and should_stop(step))
            stopping = ddp.broadcast_flag(asked or timed_out, dist)
            if (step % cfg.checkpoint_every == 0 or stopping) and step < cfg.steps and dist.is_main:
                checked_save(step)
            if stopping:
                result.interrupted = asked
                break
    bar.close()
    result.step = step
    result.elapsed = time.perf_counter() - t0
    result.tokens_seen = step * tokens_per_step
    if result.interrupted:
        return result
    final = evaluate(step)
    if dist.is_main:
        checked_save(step)
        sample(step)
    result.final = final
    return result
