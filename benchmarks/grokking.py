"""Grokking on modular addition: lmlab's reproduction against a plain PyTorch peer, in one run.

The peer is Nanda et al.'s (2023) grokking Transformer written out in plain PyTorch as in
their code (einsum attention, ReLU MLP, no LayerNorm, 1 layer, width 128, 4 heads, MLP
512, all parameters decayed, a 10-step warm-up), trained on the same 30% of the 113 x 113
pairs with the same full-batch AdamW (lr 1e-3, weight decay 1, betas 0.9/0.98). lmlab's run
is ``lmlab lab grok``'s training (its ``transformer`` family, GPT-2 block). Both train for
the same number of steps, interleaved in chunks so that load on a shared machine hits both
alike; the table gives ms per step, the step where test accuracy first passes 95%, and the
test accuracy at the end.

Run: python benchmarks/grokking.py [--steps 1500] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from _common import machine, table
from lmlab.lab.grokking import (
    GrokConfig,
    answer_logits,
    build_grok_model,
    make_optimizer,
    modular_addition_data,
)

NANDA_STEPS_TO_GROK = 14_500  # plain PyTorch, this machine, quoted in issue 5 (99% test)


class NandaTransformer(nn.Module):
    """One attention-only-plus-MLP block as in Nanda et al.'s grokking code, no norms."""

    def __init__(self, vocab: int, d: int = 128, heads: int = 4, d_mlp: int = 512, n_ctx: int = 3):
        super().__init__()
        dh = d // heads
        self.heads, self.dh = heads, dh
        self.W_E = nn.Parameter(torch.randn(d, vocab) / math.sqrt(d))
        self.W_pos = nn.Parameter(torch.randn(n_ctx, d) / math.sqrt(d))
        self.W_K = nn.Parameter(torch.randn(heads, dh, d) / math.sqrt(d))
        self.W_Q = nn.Parameter(torch.randn(heads, dh, d) / math.sqrt(d))
        self.W_V = nn.Parameter(torch.randn(heads, dh, d) / math.sqrt(d))
        self.W_O = nn.Parameter(torch.randn(d, dh * heads) / math.sqrt(d))
        self.W_in = nn.Parameter(torch.randn(d_mlp, d) / math.sqrt(d))
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = nn.Parameter(torch.randn(d, d_mlp) / math.sqrt(d))
        self.b_out = nn.Parameter(torch.zeros(d))
        self.W_U = nn.Parameter(torch.randn(d, vocab) / math.sqrt(vocab))
        self.register_buffer("mask", torch.tril(torch.ones(n_ctx, n_ctx)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.W_E[:, x].permute(1, 2, 0) + self.W_pos[: x.shape[1]]  # (b, p, d)
        k = torch.einsum("ihd,bpd->biph", self.W_K, r)
        q = torch.einsum("ihd,bpd->biph", self.W_Q, r)
        v = torch.einsum("ihd,bpd->biph", self.W_V, r)
        scores = torch.einsum("biph,biqh->biqp", k, q)
        T = x.shape[1]
        m = self.mask[:T, :T]
        attn = F.softmax((scores * m - 1e10 * (1 - m)) / math.sqrt(self.dh), dim=-1)
        z = torch.einsum("biph,biqp->biqh", v, attn)
        z = z.permute(0, 2, 1, 3).reshape(x.shape[0], T, -1)
        r = r + torch.einsum("df,bqf->bqd", self.W_O, z)
        h = F.relu(torch.einsum("md,bpd->bpm", self.W_in, r) + self.b_in)
        r = r + torch.einsum("dm,bpm->bpd", self.W_out, h) + self.b_out
        return r @ self.W_U


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--chunk", type=int, default=50, help="steps per turn (default 50)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = GrokConfig(p=113, train_fraction=0.3, threads=args.threads)
    x_tr, y_tr, x_te, y_te = modular_addition_data(cfg.p, cfg.train_fraction, cfg.seed)
    print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start")
    print(f"(a + b) mod {cfg.p}: {len(x_tr):,} training pairs, {len(x_te):,} test pairs\n")

    ours = build_grok_model(cfg).train()
    torch.manual_seed(cfg.seed)
    peer = NandaTransformer(cfg.p + 1)
    opt_ours = make_optimizer(ours, cfg)
    opt_peer = torch.optim.AdamW(peer.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    warmup = torch.optim.lr_scheduler.LambdaLR(opt_peer, lambda s: min(s / 10, 1))
    runs = {
        "lmlab lab grok (transformer family)": (ours, opt_ours, None, answer_logits),
        "Nanda et al. in plain PyTorch (peer)": (peer, opt_peer, warmup, lambda m, x: m(x)[:, -1]),
    }
    stats = {name: {"s": 0.0, "grok": None, "acc": 0.0} for name in runs}
    for start in range(0, args.steps, args.chunk):
        for name, (model, opt, sched, fwd) in runs.items():
            t0 = time.perf_counter()
            for _ in range(min(args.chunk, args.steps - start)):
                loss = F.cross_entropy(fwd(model, x_tr), y_tr)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched:
                    sched.step()
            stats[name]["s"] += time.perf_counter() - t0
            with torch.no_grad():
                acc = (fwd(model, x_te).argmax(-1) == y_te).float().mean().item()
            stats[name]["acc"] = acc
            if acc > 0.95 and stats[name]["grok"] is None:
                stats[name]["grok"] = min(start + args.chunk, args.steps)
        print(
            f"step {min(start + args.chunk, args.steps)}: "
            + ", ".join(f"{n.split(' ')[0]} test {s['acc']:.3f}" for n, s in stats.items()),
            flush=True,
        )
    ms = {n: 1000 * s["s"] / args.steps for n, s in stats.items()}
    peer_ms = ms["Nanda et al. in plain PyTorch (peer)"]
    rows = [
        [
            n,
            f"{ms[n]:.1f}",
            f"{peer_ms / ms[n]:.2f}x",
            s["grok"] or f"> {args.steps}",
            f"{s['acc']:.1%}",
        ]
        for n, s in stats.items()
    ]
    rows.append(
        [
            "Nanda et al., plain PyTorch (issue 5 reference)",
            "~100",
            "",
            f"~{NANDA_STEPS_TO_GROK:,}",
            "99%",
        ]
    )
    print()
    print(
        table(
            ["run", "ms/step", "speed vs peer", "test > 95% at step", f"test acc at {args.steps}"],
            rows,
        )
    )
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
