"""Transformer on character-level Tiny Shakespeare: lmlab against its peers, in one run.

1. Training speed at nanoGPT's CPU shape (4 layers, 4 heads, width 128, context 64,
   batch 12), same loop and optimizer: Hugging Face ``GPT2LMHeadModel`` (the peer) vs
   lmlab's Transformer in fp32 and in bf16 autocast.
2. Quality in a fixed budget (``--seconds``, default 85): lmlab's trainer with its CPU recipe
   and with nanoGPT's own 2000-step recipe. nanoGPT itself, run live on its recipe, is in
   ``benchmarks/nanogpt.py`` (no peer figure is quoted here).
3. Sampling speed: lmlab's KV-cache engine (PyTorch step, and the numba fast decode step)
   vs nanoGPT's sampler (full forward over the cropped window for every token), same model.

Run: python benchmarks/transformer.py   (needs `pip install transformers` for the peer)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from _common import machine, shared, steps_in, table
from lmlab.generate import SamplingParams, generate
from lmlab.models import Transformer, TransformerConfig
from lmlab.train.config import TrainConfig
from lmlab.train.loop import make_optimizer
from lmlab.train.precision import autocast_dtype
from lmlab.train.runner import run_training

SHAPE = {"n_layer": 4, "n_head": 4, "d_model": 128, "context": 64, "batch": 12}


def step_fn(
    model: torch.nn.Module,
    vocab: int,
    bf16: bool,
    hf: bool,
    compiled: bool = False,
    shape: tuple[int, int] | None = None,
    device: str = "cpu",
):
    """One optimizer step of a plain training loop on a fixed random batch of ``shape``
    (default: nanoGPT's 12 x 64), as a closure; the same loop for every model."""
    model.to(device).train()
    opt = make_optimizer(model, TrainConfig(lr=1e-3))
    net = torch.compile(model) if compiled else model
    g = torch.Generator(device=device).manual_seed(0)
    shape = shape or (SHAPE["batch"], SHAPE["context"])
    x = torch.randint(0, vocab, shape, generator=g, device=device)
    y = torch.randint(0, vocab, shape, generator=g, device=device)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = net(x).logits if hf else net(x)
            loss = F.cross_entropy(logits.float().view(-1, vocab), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def lmlab_model(vocab: int) -> Transformer:
    torch.manual_seed(0)
    return Transformer(
        TransformerConfig(
            vocab_size=vocab,
            context_length=SHAPE["context"],
            n_layer=SHAPE["n_layer"],
            n_head=SHAPE["n_head"],
            d_model=SHAPE["d_model"],
        )
    )


def hf_model(vocab: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=vocab,
        n_positions=SHAPE["context"],
        n_embd=SHAPE["d_model"],
        n_layer=SHAPE["n_layer"],
        n_head=SHAPE["n_head"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(cfg)


def trainer_tok_s(corpus: Path, precision: str, compiled: bool, steps: int) -> float:
    """Tokens/s of lmlab's own trainer (data sampling, schedule, clipping, logging included)
    at the same shape: the median of its logged rates after the first log interval."""
    work = Path(tempfile.mkdtemp(prefix="lmlab-speed-"))
    cfg = {
        "data": {"corpus": [str(corpus)], "val_fraction": 0.1},
        "tokenizer": {"kind": "char"},
        "model": {
            "family": "transformer",
            "n_layer": SHAPE["n_layer"],
            "n_head": SHAPE["n_head"],
            "d_model": SHAPE["d_model"],
            "dropout": 0.0,
        },
        "train": {
            "steps": steps + 20,
            "batch_size": SHAPE["batch"],
            "context": SHAPE["context"],
            "eval_every": 10**9,
            "checkpoint_every": 10**9,
            "sample_tokens": 0,
            "eval_batches": 1,
            "log_every": 20,
            "precision": precision,
            "compile": compiled,
        },
    }
    try:
        run_training(cfg, work / "run", overwrite=True, quiet=True, progress=False)
        rates = [
            json.loads(line)["tok_per_s"]
            for line in (work / "run" / "metrics.jsonl").read_text().splitlines()
            if "tok_per_s" in line
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return statistics.median(rates[1:])


def speed_section(
    vocab: int, steps: int, rounds: int, corpus: Path | None = None
) -> list[list[object]]:
    """Every configuration timed in ``rounds`` short rounds, interleaved, so that a noisy
    neighbour slows all of them alike: median ms/step, and the median (and quartiles) of
    the per-round ratios to the peer's time in the same round."""
    tokens = SHAPE["batch"] * SHAPE["context"]
    configs = {
        "lmlab fp32": dict(bf16=False, hf=False),
        "lmlab bf16 autocast": dict(bf16=True, hf=False),
        "lmlab bf16 + torch.compile": dict(bf16=True, hf=False, compiled=True),
    }
    try:
        steps_by = {"HF GPT2LMHeadModel fp32 (peer)": step_fn(hf_model(vocab), vocab, False, True)}
    except ImportError:
        steps_by = {}
        print("transformers not installed: the peer row is skipped (pip install transformers)")
    for name, kw in configs.items():
        steps_by[name] = step_fn(lmlab_model(vocab), vocab, **kw)
    for step in steps_by.values():  # warm up (and compile)
        for _ in range(10):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps_by}
    for _ in range(rounds):
        for name, step in steps_by.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - t0) / steps)
    peer_name = "HF GPT2LMHeadModel fp32 (peer)"
    peer = statistics.median(times[peer_name]) if peer_name in times else None
    rows = []
    for name, ts in times.items():
        t = statistics.median(ts)
        if peer is None:
            ratio = "-"
        else:
            per_round = sorted(p / o for p, o in zip(times[peer_name], ts, strict=True))
            q1, q3 = per_round[len(per_round) // 4], per_round[(3 * len(per_round)) // 4]
            ratio = f"{statistics.median(per_round):.2f}x ({q1:.2f}-{q3:.2f})"
        rows.append([name, f"{t * 1000:.1f}", f"{tokens / t:,.0f}", ratio])
    if corpus is not None:

        def peer_now() -> float | None:  # the peer timed again, beside a trainer run
            if peer_name not in steps_by:
                return None
            t0 = time.perf_counter()
            for _ in range(5 * steps):
                steps_by[peer_name]()
            return (time.perf_counter() - t0) / (5 * steps)

        for name, precision, compiled in (
            ("lmlab trainer end to end, bf16 (peer timed just before and after)", "bf16", False),
            ("lmlab trainer end to end, bf16 + compile (likewise)", "bf16", True),
        ):
            before = peer_now()
            tok_s = trainer_tok_s(corpus, precision, compiled, steps * rounds)
            after = peer_now()
            t = tokens / tok_s
            ratio = f"{(before + after) / 2 / t:.2f}x" if before and after else "-"
            rows.append([name, f"{t * 1000:.1f}", f"{tok_s:,.0f}", ratio])
    return rows


def quality_section(corpus: Path, recipe: dict, seconds: float, workdir: Path, vocab: int) -> dict:
    train = dict(recipe["train"])
    if train.get("steps") is None:  # as many steps as fit in the budget, so the schedule completes
        model = Transformer(
            TransformerConfig(vocab_size=vocab, context_length=train["context"], **recipe["model"])
        )
        train["steps"] = steps_in(
            seconds,
            model,
            vocab,
            train["batch_size"],
            train["context"],
            train,
            bf16=autocast_dtype(train.get("precision", "fp32"), torch.device("cpu")) is not None,
        )
    cfg = {
        "data": {"corpus": [str(corpus)], "val_fraction": 0.1},
        "tokenizer": {"kind": "char"},
        "model": {"family": "transformer", **recipe["model"]},
        "train": {
            "eval_every": 10**9,
            "checkpoint_every": 10**9,
            "sample_tokens": 0,
            "eval_batches": None,
            "log_every": 50,
            "time_limit": seconds,
            **train,
        },
    }
    run = workdir / recipe["name"]
    t0 = time.perf_counter()
    _, res = run_training(cfg, run, overwrite=True, quiet=True, progress=False)
    wall = time.perf_counter() - t0
    return {
        "name": recipe["name"],
        "steps": res.step,
        "tokens": res.tokens_seen,
        "train_s": res.elapsed,
        "wall_s": wall,
        "val_loss": res.final["val_loss"],
    }


def sampling_section(vocab_tok, n_tokens: int) -> list[list[object]]:
    """nanoGPT's sampler against lmlab's engine with its PyTorch KV-cache step and with the
    numba fast decode step (``lmlab.generate.fastdecode``), on the same model, in one run."""
    model = lmlab_model(vocab_tok.vocab_size).eval()
    params = SamplingParams(max_new_tokens=n_tokens, temperature=1.0, top_k=None, seed=1)

    def engine_tok_s(fast: bool) -> tuple[float, list[int]]:
        warm = SamplingParams(max_new_tokens=20, seed=0)
        generate(model, vocab_tok, "\n", warm, fast_decode=fast)  # warm up (and compile)
        t0 = time.perf_counter()
        out = generate(model, vocab_tok, "\n", params, fast_decode=fast)[0]
        return len(out.token_ids) / (time.perf_counter() - t0), out.token_ids

    @torch.inference_mode()
    def nanogpt_sample(idx: torch.Tensor, n: int) -> torch.Tensor:  # nanoGPT's model.generate
        for _ in range(n):
            cond = idx if idx.size(1) <= SHAPE["context"] else idx[:, -SHAPE["context"] :]
            logits = model(cond)[:, -1, :]
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
        return idx

    t0 = time.perf_counter()
    nanogpt_sample(torch.tensor([vocab_tok.encode("\n")]), n_tokens)
    peer = n_tokens / (time.perf_counter() - t0)
    cached, ids_torch = engine_tok_s(fast=False)
    fast, ids_fast = engine_tok_s(fast=True)
    same = "same tokens" if ids_fast == ids_torch else "tokens differ"
    return [
        ["nanoGPT-style sampler, no cache (same model)", f"{peer:,.0f}", "1.00x"],
        ["lmlab engine, KV cache, PyTorch step", f"{cached:,.0f}", f"{cached / peer:.2f}x"],
        [f"lmlab engine, KV cache, fast decode ({same})", f"{fast:,.0f}", f"{fast / peer:.2f}x"],
    ]


RECIPES = {
    # nanoGPT's CPU recipe, run by lmlab's trainer (2000 steps)
    "nanogpt-recipe": {
        "model": {"n_layer": 4, "n_head": 4, "d_model": 128, "dropout": 0.0},
        "train": {
            "steps": 2000,
            "batch_size": 12,
            "context": 64,
            "lr": 1e-3,
            "min_lr": 1e-4,
            "warmup": 100,
            "beta2": 0.99,
            "weight_decay": 0.1,
            "precision": "fp32",
        },
    },
    # lmlab's CPU recipe: the same shape with Llama blocks (RMSNorm, SwiGLU, RoPE) and a
    # higher learning rate; as many steps as fit in the budget (timed on a few steps first)
    "lmlab-recipe": {
        "model": {"n_layer": 4, "n_head": 4, "d_model": 128, "dropout": 0.0, "block": "llama"},
        "train": {
            "steps": None,
            "batch_size": 12,
            "context": 64,
            "lr": 3e-3,
            "min_lr": 3e-4,
            "warmup": 100,
            "beta2": 0.99,
            "weight_decay": 0.1,
            "precision": "auto",
        },
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--speed-steps", type=int, default=10, help="steps per timed round")
    ap.add_argument("--speed-rounds", type=int, default=30)
    ap.add_argument("--sample-tokens", type=int, default=1000)
    ap.add_argument("--sections", default="speed,sampling,quality", help="which parts to run")
    ap.add_argument("--recipes", default="lmlab-recipe,nanogpt-recipe")
    ap.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    ap.add_argument("--seconds", type=float, default=85.0, help="quality: training budget (85)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = shared("shakespeare", "input.txt")
    print(f"Machine: {machine()}\nData: {corpus} (first 90% train, last 10% validation)\n")
    from lmlab.tokenize import CharTokenizer

    tok = CharTokenizer.train([corpus.read_text(encoding="utf-8")])
    sections = args.sections.split(",")
    if "speed" in sections:
        print("## Training speed, nanoGPT's shape (4x128, context 64, batch 12), same loop\n")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        rows = speed_section(tok.vocab_size, args.speed_steps, args.speed_rounds, corpus)
        print(table(["model", "ms/step", "tokens/s", "vs peer (quartiles)"], rows))
        print(
            f"\nMedians of {args.speed_rounds} interleaved rounds of {args.speed_steps} steps; "
            f"load average before: {load}"
        )
    if "sampling" in sections:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\n## Sampling speed (batch 1, temperature 1; load average {load})\n")
        print(table(["sampler", "tokens/s", "ratio"], sampling_section(tok, args.sample_tokens)))
    if "quality" not in sections:
        return
    print(f"\n## Validation loss within {args.seconds:.0f} s of training\n")
    work = Path(tempfile.mkdtemp(prefix="lmlab-bench-"))
    rows = []
    try:
        for name in args.recipes.split(","):
            r = quality_section(
                corpus, {"name": name, **RECIPES[name]}, args.seconds, work, tok.vocab_size
            )
            rows.append(
                [
                    name,
                    r["steps"],
                    f"{r['tokens']:,}",
                    f"{r['train_s']:.1f}",
                    f"{r['val_loss']:.3f}",
                ]
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(["run", "steps", "tokens", "train s", "val loss"], rows))
    print("\nnanoGPT itself on its own recipe, run live as a process: python benchmarks/nanogpt.py")


if __name__ == "__main__":
    main()
