"""Grokking on modular addition (Power et al. 2022; Nanda et al. 2023), in minutes on a CPU.

Every pair ``(a, b)`` with ``0 <= a, b < p`` becomes the prompt ``a b =`` (three tokens; ``=``
is token ``p``) whose answer is ``(a + b) mod p``. A fraction of the pairs trains, the rest
tests. The model is lmlab's ``transformer`` family (1 layer, width 128, 4 heads, MLP 512,
GPT-2 block, untied embeddings), trained full-batch with AdamW (lr 1e-3, betas 0.9/0.98,
weight decay 1 on the weight matrices and embeddings) and a cross-entropy on the answer
token only. Training accuracy reaches 100% early, test accuracy stalls, then jumps; with
weight decay 0 (the control) it does not.

Speed: the loss needs only the last position, so :func:`answer_logits` runs attention's
output, the MLP, the final norm and the unembedding on that position alone; in a 1-layer
model the queries, keys and values depend only on (position, token), so they are computed
once per vocabulary entry and gathered. It equals ``model(x)[:, -1]`` (to float rounding,
gradients included) at about a quarter of the work of the plain forward. Test accuracy is
measured every ``eval_every`` steps only.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lmlab.config import atomic_write_text
from lmlab.errors import LmlabError
from lmlab.models.transformer import Transformer, TransformerConfig, _apply_rope


@dataclass
class GrokConfig:
    p: int = 113
    train_fraction: float = 0.3
    n_layer: int = 1
    d_model: int = 128
    n_head: int = 4
    d_ff: int = 512
    block: str = "gpt2"
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    steps: int = 3000
    eval_every: int = 25
    stop_after_grok: int | None = None  # stop this many steps after test accuracy > 95%
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.p < 3:
            raise LmlabError(f"the modulus p must be at least 3, got {self.p}")
        if not 0 < self.train_fraction < 1:
            raise LmlabError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.steps < 1 or self.eval_every < 1:
            raise LmlabError("steps and eval_every must be positive")


@dataclass
class GrokResult:
    weight_decay: float
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0
    ms_per_step: float = 0.0

    def first_step(self, curve: str, threshold: float) -> int | None:
        """The first evaluated step where ``curve`` (e.g. ``"test_acc"``) exceeds ``threshold``."""
        for s, v in zip(self.steps, getattr(self, curve), strict=True):
            if v > threshold:
                return s
        return None

    @property
    def memorised_at(self) -> int | None:
        return self.first_step("train_acc", 0.99)

    @property
    def grokked_at(self) -> int | None:
        return self.first_step("test_acc", 0.95)

    def plateau_test_acc(self) -> float | None:
        """Median test accuracy between memorisation and the jump (the stall)."""
        a, b = self.memorised_at, self.grokked_at or self.steps[-1] + 1
        if a is None:
            return None
        vals = sorted(v for s, v in zip(self.steps, self.test_acc, strict=True) if a <= s < b)
        return vals[len(vals) // 2] if vals else None


def modular_addition_data(
    p: int, train_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ``p*p`` prompts ``[a, b, =]`` and answers, split at random: (x_train, y_train,
    x_test, y_test)."""
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    x = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    y = (a + b) % p
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n = round(train_fraction * p * p)
    return x[perm[:n]], y[perm[:n]], x[perm[n:]], y[perm[n:]]


def build_grok_model(cfg: GrokConfig) -> Transformer:
    torch.manual_seed(cfg.seed)
    return Transformer(
        TransformerConfig(
            vocab_size=cfg.p + 1,
            context_length=3,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            d_model=cfg.d_model,
            d_ff=cfg.d_ff,
            block=cfg.block,
            tie_embeddings=False,
        )
    )


def answer_logits(model: Transformer, x: torch.Tensor) -> torch.Tensor:
    """``model(x)[:, -1]``, computing the last block's MLP and the head on the last position
    only (no dropout, no cache: the training path of this experiment)."""
    if len(model.blocks) == 1:
        return _one_layer_answer_logits(model, x)
    T = x.shape[1]
    h = model.tok_emb(x)
    rope = None
    if model.pos_emb is not None:
        h = h + model.pos_emb.weight[:T]
    else:
        rope = (model.rope_cos[:T], model.rope_sin[:T])
    *early, last = model.blocks
    for i, block in enumerate(early):
        h = block(h, rope, None, i)
    h = (h + last.attn(last.ln1(h), rope, None, len(early)))[:, -1]
    if last.mlp is not None:
        h = h + last.mlp(last.ln2(h))
    return model.head(model.ln_f(h))


def _one_layer_answer_logits(model: Transformer, x: torch.Tensor) -> torch.Tensor:
    """:func:`answer_logits` of a 1-layer model. The layer's input at position ``j`` depends
    only on the token there and ``j``, so its queries, keys and values are computed once per
    (position, vocabulary entry) and gathered, rather than once per example; attention and
    everything after it run for the last position only."""
    B, T = x.shape
    block = model.blocks[0]
    attn = block.attn
    emb = model.tok_emb.weight  # (V, C)
    pos = model.pos_emb.weight[:T, None] if model.pos_emb is not None else emb.new_zeros(1, 1, 1)
    inputs = emb[None] + pos  # (T or 1, V, C): the residual stream for every (j, token)
    table = attn.qkv(block.ln1(inputs))  # (T or 1, V, (nh + 2 nkv) hd)
    rows = torch.arange(T, device=x.device)[None, :] if table.shape[0] == T else 0
    q, k, v = table[rows, x].split(
        [attn.n_head * attn.hd, attn.n_kv * attn.hd, attn.n_kv * attn.hd], dim=-1
    )  # (B, T, .)
    q = q[:, -1:].view(B, 1, attn.n_head, attn.hd).transpose(1, 2)  # (B, nh, 1, hd)
    k = k.view(B, T, attn.n_kv, attn.hd).transpose(1, 2)  # (B, nkv, T, hd)
    v = v.view(B, T, attn.n_kv, attn.hd).transpose(1, 2)
    if model.pos_emb is None:  # RoPE: the query sits at position T - 1
        cos, sin = model.rope_cos[:T], model.rope_sin[:T]
        q = _apply_rope(q, cos[-1:], sin[-1:])
        k = _apply_rope(k, cos, sin)
    if attn.n_kv != attn.n_head:
        k = k.repeat_interleave(attn.n_head // attn.n_kv, dim=1)
        v = v.repeat_interleave(attn.n_head // attn.n_kv, dim=1)
    weights = ((q @ k.transpose(-1, -2)) / math.sqrt(attn.hd)).softmax(-1)  # (B, nh, 1, T)
    y = (weights @ v).reshape(B, attn.n_head * attn.hd)  # the last query sees every key
    h = inputs[-1 if pos.shape[0] == T else 0][x[:, -1]] + attn.proj(y)
    if block.mlp is not None:
        h = h + block.mlp(block.ln2(h))
    return model.head(model.ln_f(h))


def make_optimizer(model: Transformer, cfg: GrokConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings, none on norms and biases (as
    lmlab's trainer)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def train_grokking(cfg: GrokConfig, progress: bool = True) -> tuple[Transformer, GrokResult]:
    """Full-batch training on the modular-addition split, logging accuracy and loss."""
    torch.set_num_threads(cfg.threads)
    x_tr, y_tr, x_te, y_te = modular_addition_data(cfg.p, cfg.train_fraction, cfg.seed)
    model = build_grok_model(cfg).train()
    opt = make_optimizer(model, cfg)
    res = GrokResult(weight_decay=cfg.weight_decay)
    stop_at = cfg.steps
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps + 1), desc=f"wd {cfg.weight_decay:g}", disable=not progress)
    for step in bar:
        logits = answer_logits(model, x_tr)
        loss = F.cross_entropy(logits, y_tr)
        if step % cfg.eval_every == 0 or step == stop_at:
            with torch.no_grad():
                test_logits = answer_logits(model, x_te)
                res.steps.append(step)
                res.train_loss.append(loss.item())
                res.train_acc.append((logits.argmax(-1) == y_tr).float().mean().item())
                res.test_loss.append(F.cross_entropy(test_logits, y_te).item())
                res.test_acc.append((test_logits.argmax(-1) == y_te).float().mean().item())
            bar.set_postfix(train=f"{res.train_acc[-1]:.3f}", test=f"{res.test_acc[-1]:.3f}")
            if cfg.stop_after_grok is not None and stop_at == cfg.steps and res.grokked_at:
                stop_at = min(cfg.steps, step + cfg.stop_after_grok)
            if step >= stop_at:
                break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    res.seconds = time.perf_counter() - t0
    res.ms_per_step = 1000 * res.seconds / max(1, res.steps[-1])
    return model, res


def plot_grokking(results: list[GrokResult], cfg: GrokConfig, path: Path) -> None:
    """Accuracy and loss against steps (log scale), train dashed and test solid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for r, color in zip(results, ["tab:blue", "tab:red", "tab:green"], strict=False):
        s = [max(1, v) for v in r.steps]
        name = f"wd {r.weight_decay:g}"
        a.plot(s, r.train_acc, color=color, ls="--", lw=1, label=f"{name} train")
        a.plot(s, r.test_acc, color=color, label=f"{name} test")
        b.plot(s, r.train_loss, color=color, ls="--", lw=1, label=f"{name} train")
        b.plot(s, r.test_loss, color=color, label=f"{name} test")
    a.axhline(1 / cfg.p, color="grey", ls=":", lw=0.8, label="chance")
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    a.set_ylabel("accuracy")
    b.set_yscale("log")
    b.set_ylabel("cross-entropy")
    fig.suptitle(
        f"Grokking: (a + b) mod {cfg.p}, {cfg.train_fraction:.0%} of pairs for training",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_line(r: GrokResult) -> str:
    """One plain-text finding per run."""
    mem, grok, plateau = r.memorised_at, r.grokked_at, r.plateau_test_acc()
    parts = [f"weight decay {r.weight_decay:g}:"]
    parts.append(f"train accuracy > 99% at step {mem}" if mem is not None else "never memorised")
    if plateau is not None:
        parts.append(f"test accuracy stalls at {plateau:.1%}")
    if grok is not None:
        parts.append(f"test accuracy > 95% at step {grok}")
    else:
        parts.append(f"no grokking in {r.steps[-1]} steps (final test {r.test_acc[-1]:.1%})")
    parts.append(f"{r.seconds:.0f} s, {r.ms_per_step:.1f} ms/step")
    return " ".join(parts[:1]) + " " + "; ".join(parts[1:])


def run_grokking(
    cfg: GrokConfig,
    out: str | Path,
    control_weight_decay: float | None = 0.0,
    progress: bool = True,
) -> list[GrokResult]:
    """The experiment and (unless ``None``) its control with another weight decay, both for
    ``cfg.steps`` steps; writes ``history.json``, ``grokking.png`` and ``summary.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = [train_grokking(cfg, progress)[1]]
    if control_weight_decay is not None:
        control = GrokConfig(**{**asdict(cfg), "weight_decay": control_weight_decay})
        control.steps = results[0].steps[-1]  # the same budget as the experiment used
        results.append(train_grokking(control, progress)[1])
    atomic_write_text(
        out / "history.json",
        json.dumps({"config": asdict(cfg), "runs": [asdict(r) for r in results]}, indent=1),
    )
    plot_grokking(results, cfg, out / "grokking.png")
    md = ["# Grokking", "", *[f"- {summary_line(r)}" for r in results]]
    md += ["", "![accuracy and loss](grokking.png)", ""]
    atomic_write_text(out / "summary.md", "\n".join(md))
    return results
