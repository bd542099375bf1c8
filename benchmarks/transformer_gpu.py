"""Transformer training throughput on one CUDA GPU: lmlab against Hugging Face, in one run.

GPT-2 small's shape (12 layers, 12 heads, width 768, context 1024, GPT-2's vocabulary),
batch 16, bf16 autocast, fused AdamW, gradient clipping; the same loop for every model.
Peers: Hugging Face ``GPT2LMHeadModel`` (its SDPA attention), eager and torch.compile'd.
Configurations are timed in short interleaved rounds; the table gives medians, the ratio
to the eager peer, and the model FLOPs utilisation (6 x parameters x tokens, plus
attention, over the GPU's dense bf16 peak).

Run on a machine with a GPU: python benchmarks/transformer_gpu.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from _common import table
from lmlab.models import Transformer, TransformerConfig
from transformer import step_fn  # the CPU benchmark's loop, on the GPU

SHAPE = {"n_layer": 12, "n_head": 12, "d_model": 768, "context": 1024, "vocab": 50257}
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}  # dense tensor-core FLOP/s


def lmlab_model() -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=SHAPE["vocab"],
        context_length=SHAPE["context"],
        n_layer=SHAPE["n_layer"],
        n_head=SHAPE["n_head"],
        d_model=SHAPE["d_model"],
    )
    return Transformer(cfg)


def hf_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=SHAPE["vocab"],
        n_positions=SHAPE["context"],
        n_embd=SHAPE["d_model"],
        n_layer=SHAPE["n_layer"],
        n_head=SHAPE["n_head"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(cfg)  # SDPA attention, transformers' default


def flops_per_token(params: int) -> float:
    """Training FLOPs per token: 6N for the weights plus the attention scores (PaLM's count)."""
    L, d, T = SHAPE["n_layer"], SHAPE["d_model"], SHAPE["context"]
    return 6 * params + 12 * L * d * T


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA GPU (the CPU benchmark is benchmarks/transformer.py)")
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    print(f"GPU: {name}; torch {torch.__version__}; batch {args.batch} x {SHAPE['context']}\n")
    configs = {"HF GPT2LMHeadModel, eager (peer)": (hf_model, True, False)}
    configs["lmlab Transformer, eager"] = (lmlab_model, False, False)
    if not args.no_compile:
        configs["HF GPT2LMHeadModel, torch.compile"] = (hf_model, True, True)
        configs["lmlab Transformer, torch.compile"] = (lmlab_model, False, True)
    steps, params = {}, {}
    for label, (make, hf, compiled) in configs.items():
        try:
            model = make()
        except ImportError:
            print(f"transformers not installed: {label} skipped")
            continue
        params[label] = sum(p.numel() for p in model.parameters())
        shape = (args.batch, SHAPE["context"])
        steps[label] = step_fn(model, SHAPE["vocab"], True, hf, compiled, shape, "cuda")
        t0 = time.perf_counter()
        for _ in range(3):  # warm up (and compile)
            steps[label]()
        torch.cuda.synchronize()
        print(
            f"{label}: {params[label] / 1e6:.1f}M parameters, warm-up {time.perf_counter() - t0:.0f} s"
        )
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(args.rounds):
        for label, step in steps.items():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            torch.cuda.synchronize()
            times[label].append((time.perf_counter() - t0) / args.steps)
    tokens = args.batch * SHAPE["context"]
    peer = next(iter(times.values()))
    rows = []
    for label, ts in times.items():
        t = statistics.median(ts)
        ratio = statistics.median(p / o for p, o in zip(peer, ts, strict=True))
        mfu = f"{flops_per_token(params[label]) * tokens / t / peak:.0%}" if peak else "-"
        rows.append([label, f"{t * 1000:.1f}", f"{tokens / t:,.0f}", f"{ratio:.2f}x", mfu])
    print()
    print(table(["model", "ms/step", "tokens/s", "vs eager peer", "MFU"], rows))
    print(f"\nPeak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB (all models)")
    print(f"Medians of {args.rounds} interleaved rounds of {args.steps} steps")


if __name__ == "__main__":
    main()
