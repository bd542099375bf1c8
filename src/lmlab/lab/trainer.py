"""Train one lmlab model on one synthetic task and measure it along the way.

The unit of a sweep is a :class:`RunSpec` (task, model size, training problems, steps,
seed and the training settings). :func:`train_and_evaluate` builds the task's split, a
Transformer of the requested size (``lmlab.models``), trains it with the loss on the
answer tokens only, and evaluates every metric of :mod:`lmlab.lab.metrics` on the test
problems at log-spaced checkpoints. The whole training set lives in one tensor; a step is
one indexing, one forward and one backward, with no per-example Python.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from lmlab.errors import LmlabError
from lmlab.lab.metrics import evaluate, masked_mean, token_logprobs
from lmlab.lab.tasks import encode, make_split, seq_len_for, task_from_spec
from lmlab.models import build_model
from lmlab.models.transformer import TransformerConfig
from lmlab.train.config import TrainConfig
from lmlab.train.loop import make_optimizer
from lmlab.train.schedule import lr_at


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run of a sweep (``threads`` excepted)."""

    task: str  # task spec, e.g. "add:digits=3"
    size: str  # "WIDTHxLAYERS" or "WIDTHxLAYERSxHEADS", e.g. "64x2"
    data: int  # distinct training problems
    steps: int  # optimizer steps
    seed: int = 0  # model initialisation and batch order
    batch_size: int = 64
    lr: float | None = None  # None: auto_lr(width), 1e-2 up to width 64, then 1e-2 * 64 / width
    weight_decay: float = 0.1
    warmup: int = 50
    block: str = "gpt2"
    n_test: int = 500
    evals: int = 8  # checkpoints evaluated along training (log-spaced, plus step 0)
    data_seed: int = 0  # the split; fixed across a sweep so every run sees the same test set
    threads: int = 1

    @property
    def run_id(self) -> str:
        """A short hash of the defining fields: the results table's key for this run."""
        d = asdict(self)
        d.pop("threads")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("threads")
        return d


@dataclass
class RunResult:
    spec: RunSpec
    n_params: int
    seq_len: int
    wall_s: float
    evals: list[dict[str, float]] = field(default_factory=list)  # step, tokens, compute, metrics


def parse_size(size: str) -> tuple[int, int, int]:
    """``"64x2"`` -> (width 64, 2 layers, 2 heads); heads default to width / 32 (at least 1)."""
    try:
        parts = [int(p) for p in size.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (2, 3) or min(parts) < 1:
        raise LmlabError(f"model size {size!r} is not WIDTHxLAYERS[xHEADS], e.g. 64x2 or 128x4x4")
    width, layers = parts[0], parts[1]
    heads = parts[2] if len(parts) == 3 else max(1, width // 32)
    if width % heads or (width // heads) % 2:
        raise LmlabError(f"model size {size!r}: width must split into heads of an even size")
    return width, layers, heads


def model_config(
    size: str, vocab_size: int, seq_len: int, block: str = "gpt2"
) -> TransformerConfig:
    width, layers, heads = parse_size(size)
    return TransformerConfig(
        vocab_size=vocab_size,
        context_length=seq_len,
        n_layer=layers,
        n_head=heads,
        d_model=width,
        block=block,
    )


def auto_lr(size: str) -> float:
    """Peak learning rate by width: 1e-2 up to width 64, then falling as 1/width (wider
    models need smaller steps; one fixed rate would handicap the large end of a sweep)."""
    width = parse_size(size)[0]
    return 1e-2 * min(1.0, 64 / width)


def eval_steps(steps: int, evals: int) -> list[int]:
    """Step 0 and ``evals`` roughly log-spaced steps ending at ``steps``."""
    if evals <= 1:
        return [0, steps]
    lo = max(1.0, steps / 64)
    pts = {round(lo * (steps / lo) ** (i / (evals - 1))) for i in range(evals)}
    return sorted({0, steps, *pts})


def train_and_evaluate(spec: RunSpec, progress: bool = False) -> RunResult:
    """Train ``spec``'s model on its task and evaluate it at :func:`eval_steps`."""
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, spec.threads))
    task = task_from_spec(spec.task)
    split = make_split(task, spec.data, spec.n_test, spec.data_seed)
    vocab = task.vocab()
    seq_len = seq_len_for(split)
    train, test = encode(split.train, vocab, seq_len), encode(split.test, vocab, seq_len)
    train_probe = train.subset(torch.arange(min(len(train), spec.n_test)))

    torch.manual_seed(spec.seed)
    model = build_model("transformer", model_config(spec.size, len(vocab), seq_len, spec.block))
    lr = spec.lr or auto_lr(spec.size)
    cfg = TrainConfig(steps=spec.steps, lr=lr, weight_decay=spec.weight_decay, warmup=spec.warmup)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(spec.seed)
    ids, mask = train.ids, train.target_mask()
    tokens_per_step = spec.batch_size * (seq_len - 1)
    n_params = model.num_params()
    checkpoints = set(eval_steps(spec.steps, spec.evals))
    result = RunResult(spec, n_params, seq_len, 0.0)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=spec.steps, desc=f"{spec.size} {spec.task}", unit="step", leave=False)
    model.train()
    for step in range(spec.steps + 1):
        if step in checkpoints:
            row = evaluate(model, test)
            row["train_loss"] = _train_loss(model, train_probe)
            tokens = step * tokens_per_step
            row.update(step=step, tokens=tokens, compute=6.0 * n_params * tokens)
            result.evals.append(row)
        if step == spec.steps:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, lr, cfg.final_lr, spec.warmup, spec.steps)
        idx = torch.randint(len(ids), (spec.batch_size,), generator=gen)
        x, m = ids[idx], mask[idx]
        logits = model(x[:, :-1])
        per_tok = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none"
        ).view_as(m)
        loss = (per_tok * m).sum() / m.sum()
        if not math.isfinite(loss.item()):
            raise LmlabError(f"loss became {loss.item()} at step {step}; lower the learning rate")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    result.wall_s = time.perf_counter() - t0
    return result


@torch.no_grad()
def _train_loss(model, enc) -> float:
    was = model.training
    model.eval()
    logp, _ = token_logprobs(model(enc.ids[:, :-1]), enc.ids[:, 1:])
    model.train(was)
    mask = enc.target_mask()
    return float(-(masked_mean(logp, mask) * mask.sum(-1)).sum() / mask.sum())
