"""lmlab eval's speed: the old loop (one window per forward call) against the batched one.

Same model, same file, same scores. By default a 0.86M-parameter character-level Transformer
(4 layers of width 128, context 256; untrained, as the weights do not change the speed) on
Tiny Shakespeare (1.1 MB, 1.1M tokens); ``--tokenizer bpe`` takes a 0.95M one with a BPE
vocabulary of 4,096 (depth 2), and ``--run DIR`` a trained run. The text is cut into
``--rounds`` slices, each scored by both paths in alternating order, so the host's slow
phases hit both alike. Also times the batched path in bf16 autocast (``lmlab eval --precision bf16``).
Prints the paths' seconds and scored tokens/s, the speed-up (in
total, and the per-round median with quartiles), the largest loss difference, and, for
reference, the training loop's forward tokens/s (batches of 32 windows through the same
model, as the trainer runs them, timed in every round too).

Run: python benchmarks/eval_speed.py [--tokenizer bpe | --run DIR] [--file FILE] [--tokens N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _common import results_section, shared, table
from lmlab.evaluate.perplexity import plan_windows, stream_loss
from lmlab.models import LanguageModel


@torch.inference_mode()
def per_window_loss(model: LanguageModel, ids: np.ndarray, stride: int | None = None) -> float:
    """The scoring loop before batching (lmlab 0.x): one window per forward call."""
    ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    n, ctx = len(ids_t), model.context_length
    stride = stride or max(1, ctx // 2)
    total, scored, begin = 0.0, 0, 0
    while scored < n - 1:
        end = min(begin + ctx, n - 1)
        logits = model(ids_t[begin:end][None])[0]
        new = scored - begin
        total += F.cross_entropy(
            logits[new:].float(), ids_t[begin + 1 + new : end + 1], reduction="sum"
        ).item()
        scored = end
        begin = min(begin + stride, max(0, n - 1 - ctx)) if end < n - 1 else end
    return total / (n - 1)


@torch.inference_mode()
def training_forward_seconds(
    model: LanguageModel, ids: np.ndarray, seed: int, batches: int = 3, batch: int = 32
) -> tuple[float, int]:
    """Seconds and tokens of the trainer's forward pass (``batch`` random windows, logits
    and loss) over ``batches`` batches, after one untimed batch."""
    ctx = model.context_length
    starts = np.random.default_rng(seed).integers(0, len(ids) - ctx - 1, (batches + 1, batch))
    seconds = 0.0
    for i, s in enumerate(starts):
        win = torch.from_numpy(np.stack([ids[j : j + ctx + 1] for j in s]))
        t0 = time.perf_counter()
        logits = model(win[:, :-1])
        F.cross_entropy(logits.reshape(-1, logits.size(-1)), win[:, 1:].reshape(-1))
        if i > 0:
            seconds += time.perf_counter() - t0
    return seconds, batches * batch * ctx


def build(args: argparse.Namespace, text: str):
    if args.run:
        from lmlab.run import load_run

        run = load_run(args.run)
        return run.model, run.tokenizer
    from lmlab.models.transformer import Transformer, TransformerConfig, for_depth
    from lmlab.tokenize import train_tokenizer

    torch.manual_seed(0)
    if args.tokenizer == "bpe":  # (args.tokenizer: the model being built)
        tok = train_tokenizer("bpe", [text], vocab_size=4096)
        return Transformer(for_depth(2, tok.vocab_size, 256)).eval(), tok
    tok = train_tokenizer("char", [text])
    cfg = TransformerConfig(
        vocab_size=tok.vocab_size, context_length=256, n_layer=4, n_head=4, d_model=128
    )
    return Transformer(cfg).eval(), tok


def measure(args: argparse.Namespace, kind: str, text: str, path) -> dict:
    """One model's rounds: the three paths' seconds and scored tokens/s, the training
    forward's tokens/s, the largest score differences."""
    args.tokenizer = kind
    model, tok = build(args, text)
    ctx = model.context_length
    if ctx is None:
        raise SystemExit("this benchmark times the Transformer's sliding windows; pass one")
    ids = np.concatenate([[tok.eos_id], tok.encode_array(text)])[: args.tokens]
    # The stream is cut into rounds; each round is scored by every path, in alternating
    # order, so the host's slow phases hit them alike (the ratio is the per-round median).
    bounds = np.linspace(0, len(ids), args.rounds + 1).astype(int)
    secs = {"old": 0.0, "new": 0.0, "bf16": 0.0}
    train_s, train_tokens, scored, window_tokens, loss_sum = 0.0, 0, 0, 0, 0.0
    ratios, diffs, diffs_bf16 = [], [], []
    for r in range(args.rounds):
        part = ids[bounds[r] : bounds[r + 1] + 1]
        t = {}
        sec, n_tok = training_forward_seconds(model, ids, r)  # in the same period, for reference
        train_s, train_tokens = train_s + sec, train_tokens + n_tok
        order = ("old", "new", "bf16")
        for name in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            if name == "old":
                old = per_window_loss(model, part)
            elif name == "new":  # the old path's window, for equal scores
                new, n = stream_loss(model, part, window=ctx)
            else:  # lmlab eval --precision bf16
                fast, _ = stream_loss(model, part, window=ctx, autocast=torch.bfloat16)
            t[name] = time.perf_counter() - t0
        for k in secs:
            secs[k] += t[k]
        ratios.append(t["old"] / t["new"])
        diffs.append(abs(old - new))
        diffs_bf16.append(abs(old - fast) / old)
        scored += n
        loss_sum += new * n
        window_tokens += len(plan_windows(len(part), ctx, ctx // 2)) * min(ctx, n)
    return {"kind": kind, "params": model.num_params(), "ctx": ctx, "tokens": len(ids) - 1,
            "secs": secs, "scored": scored, "window_tokens": window_tokens,
            "train_rate": train_tokens / train_s, "ratio_median": float(np.median(ratios)),
            "diff": max(diffs), "diff_bf16": max(diffs_bf16), "loss": loss_sum / scored}  # fmt: skip


LABELS = {"char": "char Transformer", "bpe": "BPE Transformer (4,096 tokens)"}


def report(results: list[dict], path) -> None:
    first = results[0]
    print(f"Text: {path}; context {first['ctx']}, stride {first['ctx'] // 2}; the paths take "
          "turns in interleaved rounds and give the same scores.\n")  # fmt: skip
    headers = ["path"]
    for r in results:
        name = f"{r['params'] / 1e6:.2f}M {LABELS[r['kind']]}, {r['tokens']:,} tokens"
        headers += [f"{name}: seconds", "scored tokens/s"]
    paths = [("one window per forward call (before)", "old"), ("batched windows (now, default)",
             "new"), ("batched, `--precision bf16`", "bf16")]  # fmt: skip
    rows = [[label] + [c for r in results for c in (f"{r['secs'][k]:.1f}",
             f"{r['scored'] / r['secs'][k]:,.0f}")] for label, k in paths]  # fmt: skip
    rows.append(["the training loop's forward pass (reference)"]
                + [c for r in results for c in ("", f"{r['train_rate']:,.0f}")])  # fmt: skip
    print(table(headers, rows))
    print()
    for r in results:
        s = r["secs"]
        print(f"- {LABELS[r['kind']]}: batched {s['old'] / s['new']:.1f}x the old loop (per-round "
              f"median {r['ratio_median']:.1f}x), bf16 {s['old'] / s['bf16']:.1f}x; the batched "
              f"path reads window tokens at {r['window_tokens'] / s['new'] / r['train_rate']:.2f}x "
              f"the training forward's rate and scores {r['scored'] / s['new'] / r['train_rate']:.2f}x "
              f"of it (the default stride reads every token twice); largest differences "
              f"{r['diff']:.1e} nats (fp32), {r['diff_bf16']:.1e} relative (bf16).")  # fmt: skip
    r = results[0]
    ratio = r["secs"]["old"] / r["secs"]["new"]
    verdict = "met" if ratio >= 10 else "not met"
    print(f"- Issue 16's target, batched >= 10x the old loop: {verdict} in this run ({ratio:.1f}x, "
          f"load average {os.getloadavg()[0]:.2f}). The old loop's time depends on the machine's "
          "load far more than the batched path's: with another job on the 2 cores, one window "
          "per call spends most of its time in the thread pool's barriers (the issue's \"6 "
          "minutes\"), while on a quiet machine it is within 1.5x of the batched path, which is "
          "then bound by the CPU's arithmetic, as the training forward is.")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--run", help="score this run's model (default: fresh Transformers)")
    ap.add_argument(
        "--tokenizer",
        default="char,bpe",
        help="the fresh models, comma-separated: char (4 x 128, 0.86M parameters) and bpe "
        "(4,096 tokens, depth 2, 0.95M); default both",
    )
    ap.add_argument("--file", help="text to score (default: Tiny Shakespeare)")
    ap.add_argument("--tokens", type=int, help="score only the first N tokens (a quick run)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    ap.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    ap.add_argument("--write", action="store_true", help="put the table into RESULTS.md")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.file or shared("shakespeare", "input.txt")
    text = Path(path).read_text(encoding="utf-8")
    kinds = ["run"] if args.run else args.tokenizer.split(",")
    LABELS["run"] = f"run {args.run}"
    with results_section("eval-speed", args.write, "Evaluation speed, `lmlab eval`"):
        report([measure(args, k, text, path) for k in kinds], path)


if __name__ == "__main__":
    main()
