"""Induction heads form in a sudden phase change (Olsson et al. 2022), reproduced on 2 CPU cores.

Training data: sequences of random tokens that repeat with a random period ``k``
(``r1..rk r1..rk r1..`` up to the sequence length, ``k`` drawn anew for every sequence, the
``k`` tokens of a period distinct). Only in-context copying can predict them, and since the
period varies, a fixed positional offset cannot: the model has to find the previous
occurrence of the current token and copy what followed it, which takes two attention
layers composing (a previous-token head, then an induction head).

A 2-layer attention-only Transformer and a 1-layer control are trained alike. Along
training they are evaluated on held-out ``[r1..rk r1..rk]`` sequences (``k`` = half the
length): the loss on the repeated half and every head's prefix-matching score
(:mod:`lmlab.lab.heads`). The 2-layer model's repeat loss falls from about ``log V`` to
nearly 0 within a few hundred steps while a layer-2 head's prefix-matching score jumps; the
control only learns which tokens occur in the context and stays far above.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lmlab.config import atomic_write_text
from lmlab.errors import LmlabError
from lmlab.lab.heads import attention_patterns, prefix_matching_score, repeated_random_tokens
from lmlab.models.transformer import Transformer, TransformerConfig


@dataclass
class InductionConfig:
    vocab_size: int = 128
    seq_len: int = 64
    min_period: int = 4
    n_head: int = 4
    d_model: int = 64
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 25
    eval_seqs: int = 64
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.vocab_size < self.seq_len // 2:
            raise LmlabError(
                f"vocab_size {self.vocab_size} is below half the sequence length {self.seq_len}; "
                "a period of distinct random tokens needs at least that many tokens"
            )
        if not 2 <= self.min_period <= self.seq_len // 2:
            raise LmlabError(f"min_period must be in [2, seq_len/2], got {self.min_period}")
        if self.steps < 1 or self.eval_every < 1:
            raise LmlabError("steps and eval_every must be positive")


@dataclass
class PhaseChange:
    step: int  # where the curve falls (or rises) fastest
    start: float  # value at the first evaluation
    end: float  # value at the last evaluation
    rate: float  # steepest change per 100 steps (negative when falling)
    begin: int  # first step past 10% of the overall change (smoothed curve)
    finish: int  # first step past 90% of it


@dataclass
class InductionResult:
    n_layer: int
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean over the last eval interval
    repeat_loss: list[float] = field(default_factory=list)  # held-out, second repeat
    first_half_loss: list[float] = field(default_factory=list)  # held-out, first repeat
    prefix_scores: list[list[list[float]]] = field(default_factory=list)  # (eval, L, H)
    seconds: float = 0.0
    loss_change: PhaseChange | None = None
    score_change: PhaseChange | None = None

    def best_head(self) -> tuple[int, int, float]:
        """The (layer, head, score) with the highest final prefix-matching score."""
        last = np.asarray(self.prefix_scores[-1])
        i = int(last.argmax())
        return i // last.shape[1], i % last.shape[1], float(last.flat[i])


def periodic_batch(
    rng: np.random.Generator, n: int, seq_len: int, vocab_size: int, min_period: int
) -> torch.Tensor:
    """``n`` sequences of distinct random tokens repeating with a random period each."""
    periods = rng.integers(min_period, seq_len // 2 + 1, size=n)
    rows = [np.resize(rng.choice(vocab_size, size=k, replace=False), seq_len) for k in periods]
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def detect_phase_change(
    steps, values, min_change: float, falling: bool = True
) -> PhaseChange | None:
    """Where a curve changes fastest, if it changes by at least ``min_change`` overall.

    Slopes are taken between consecutive evaluations of a lightly smoothed curve (a
    3-point moving average), so one noisy evaluation does not make a phase change.
    """
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 3:
        return None
    sign = 1.0 if falling else -1.0
    if sign * (v[0] - v[-1]) < min_change:
        return None
    smooth = np.convolve(np.pad(v, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    slope = np.diff(smooth) / np.diff(s)  # per step, between evaluations i and i+1
    i = int(np.argmin(sign * slope))
    done = sign * (smooth[0] - smooth) / (sign * (smooth[0] - smooth[-1]) or 1.0)
    return PhaseChange(
        step=int(round((s[i] + s[i + 1]) / 2)),
        start=float(v[0]),
        end=float(v[-1]),
        rate=float(slope[i] * 100),
        begin=int(s[np.argmax(done >= 0.1)]),
        finish=int(s[np.argmax(done >= 0.9)]),
    )


@torch.no_grad()
def _evaluate(model: Transformer, ids: torch.Tensor, k: int) -> tuple[float, float, np.ndarray]:
    model.eval()
    logits = model(ids[:, :-1])
    ce = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # (N, T-1)
    first, repeat = ce[:, : k - 1].mean().item(), ce[:, k:].mean().item()
    scores = torch.stack([prefix_matching_score(p, k) for p in attention_patterns(model, ids)])
    model.train()
    return first, repeat, scores.numpy()


def train_induction(
    cfg: InductionConfig, n_layer: int, progress: bool = True
) -> tuple[Transformer, InductionResult]:
    """Train one attention-only model of ``n_layer`` layers, evaluating along the way."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = Transformer(
        TransformerConfig(
            vocab_size=cfg.vocab_size,
            context_length=cfg.seq_len,
            n_layer=n_layer,
            n_head=cfg.n_head,
            d_model=cfg.d_model,
            mlp=False,
            tie_embeddings=False,
        )
    )
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98)
    )
    rng = np.random.default_rng(cfg.seed)
    k = cfg.seq_len // 2
    held_out = repeated_random_tokens(cfg.eval_seqs, k, range(cfg.vocab_size), cfg.seed + 10_000)
    res = InductionResult(n_layer=n_layer)
    running: list[float] = []

    def log(step: int) -> None:
        first, repeat, scores = _evaluate(model, held_out, k)
        res.steps.append(step)
        res.train_loss.append(float(np.mean(running)) if running else float("nan"))
        res.first_half_loss.append(first)
        res.repeat_loss.append(repeat)
        res.prefix_scores.append(scores.round(4).tolist())
        running.clear()

    t0 = time.perf_counter()
    log(0)
    bar = tqdm(range(1, cfg.steps + 1), desc=f"{n_layer}-layer", disable=not progress)
    for step in bar:
        x = periodic_batch(rng, cfg.batch_size, cfg.seq_len, cfg.vocab_size, cfg.min_period)
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            log(step)
            bar.set_postfix(repeat_loss=f"{res.repeat_loss[-1]:.3f}")
    res.seconds = time.perf_counter() - t0
    # A phase change must take the repeat loss down by half of log V at least, and the
    # best head's prefix-matching score up by 0.3.
    res.loss_change = detect_phase_change(
        res.steps, res.repeat_loss, 0.5 * float(np.log(cfg.vocab_size))
    )
    best = [float(np.max(s)) for s in res.prefix_scores]
    res.score_change = detect_phase_change(res.steps, best, 0.3, falling=False)
    return model, res


def plot_induction(results: list[InductionResult], vocab_size: int, path: Path) -> None:
    """Repeat loss and best prefix-matching score along training, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for r, color in zip(results, ["tab:blue", "tab:orange", "tab:green"], strict=False):
        label = f"{r.n_layer}-layer attention-only"
        a.plot(r.steps, r.repeat_loss, color=color, label=label)
        b.plot(r.steps, [float(np.max(s)) for s in r.prefix_scores], color=color, label=label)
        if r.loss_change:  # the phase change: 10% to 90% of the loss drop, shaded
            for ax in (a, b):
                ax.axvspan(r.loss_change.begin, r.loss_change.finish, color=color, alpha=0.08)
                ax.axvline(r.loss_change.step, color=color, ls=":", lw=1)
    a.axhline(np.log(vocab_size), color="grey", ls="--", lw=0.8, label="log V (chance)")
    a.set_xlabel("step")
    a.set_ylabel("loss on the repeated half (nats)")
    a.legend(fontsize=7)
    b.set_xlabel("step")
    b.set_ylabel("best head's prefix-matching score")
    b.set_ylim(0, 1)
    b.legend(fontsize=7)
    fig.suptitle("Induction heads: a phase change in 2 layers, none in 1", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_lines(results: list[InductionResult], vocab_size: int) -> list[str]:
    """Plain-text findings, one line per model."""
    lines = []
    for r in results:
        layer, head, score = r.best_head()
        line = (
            f"{r.n_layer}-layer: repeat loss {r.repeat_loss[0]:.2f} -> {r.repeat_loss[-1]:.3f} nats "
            f"(log V = {np.log(vocab_size):.2f}); best head L{layer}H{head} prefix-matching "
            f"{score:.2f}; {r.seconds:.0f} s"
        )
        if r.loss_change:
            c = r.loss_change
            line += f"; phase change: repeat loss falls over steps {c.begin}-{c.finish}, fastest at {c.step}"
            if r.score_change:
                c = r.score_change
                line += f"; prefix score rises over steps {c.begin}-{c.finish}, fastest at {c.step}"
        else:
            line += "; no phase change"
        lines.append(line)
    return lines


def run_induction(
    cfg: InductionConfig, out: str | Path, layers: tuple[int, ...] = (2, 1), progress: bool = True
) -> list[InductionResult]:
    """Train the models of ``layers`` depths and write ``history.json``, ``induction.png``
    and ``summary.md`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = [train_induction(cfg, n, progress)[1] for n in layers]
    atomic_write_text(
        out / "history.json",
        json.dumps({"config": asdict(cfg), "runs": [asdict(r) for r in results]}, indent=1),
    )
    plot_induction(results, cfg.vocab_size, out / "induction.png")
    md = [
        "# Induction heads",
        "",
        *[f"- {line}" for line in summary_lines(results, cfg.vocab_size)],
    ]
    md += ["", "![repeat loss and prefix-matching score](induction.png)", ""]
    atomic_write_text(out / "summary.md", "\n".join(md))
    return results
