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
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _common import machine, shared, table
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
    if args.tokenizer == "bpe":
        tok = train_tokenizer("bpe", [text], vocab_size=4096)
        return Transformer(for_depth(2, tok.vocab_size, 256)).eval(), tok
    tok = train_tokenizer("char", [text])
    cfg = TransformerConfig(
        vocab_size=tok.vocab_size, context_length=256, n_layer=4, n_head=4, d_model=128
    )
    return Transformer(cfg).eval(), tok


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--run", help="score this run's model (default: a fresh Transformer)")
    ap.add_argument(
        "--tokenizer",
        choices=("char", "bpe"),
        default="char",
        help="the fresh model's: char (4 x 128, 0.86M parameters; default) or bpe (4,096 "
        "tokens, depth 2, 0.95M)",
    )
    ap.add_argument("--file", help="text to score (default: Tiny Shakespeare)")
    ap.add_argument("--tokens", type=int, help="score only the first N tokens (a quick run)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    ap.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.file or shared("shakespeare", "input.txt")
    text = Path(path).read_text(encoding="utf-8")
    model, tok = build(args, text)
    ctx = model.context_length
    if ctx is None:
        raise SystemExit("this benchmark times the Transformer's sliding windows; pass one")
    ids = np.concatenate([[tok.eos_id], tok.encode_array(text)])[: args.tokens]
    print(f"# eval speed: {path}, {len(ids) - 1:,} tokens, {model.num_params():,} parameters")
    print(f"# context {ctx}, stride {ctx // 2}, {args.rounds} interleaved rounds; {machine()}\n")
    # The stream is cut into rounds; each round is scored by both paths, in alternating
    # order, so the host's slow phases hit both alike (the ratio is the per-round median).
    bounds = np.linspace(0, len(ids), args.rounds + 1).astype(int)
    t_old = t_new = t_bf16 = train_s = 0.0
    ratios_bf16: list[float] = []
    diffs_bf16: list[float] = []
    train_tokens = 0
    ratios, diffs, scored, window_tokens, loss_sum = [], [], 0, 0, 0.0
    for r in range(args.rounds):
        part = ids[bounds[r] : bounds[r + 1] + 1]
        t = {}
        sec, tok = training_forward_seconds(model, ids, r)  # in the same period, for reference
        train_s, train_tokens = train_s + sec, train_tokens + tok
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
        t_old, t_new, t_bf16 = t_old + t["old"], t_new + t["new"], t_bf16 + t["bf16"]
        ratios_bf16.append(t["old"] / t["bf16"])
        diffs_bf16.append(abs(old - fast) / old)
        ratios.append(t["old"] / t["new"])
        diffs.append(abs(old - new))
        scored += n
        loss_sum += new * n
        window_tokens += len(plan_windows(len(part), ctx, ctx // 2)) * min(ctx, n)
    train_rate = train_tokens / train_s
    rows = [
        ["one window per call (before)", f"{t_old:.1f}", f"{scored / t_old:,.0f}"],
        ["batched windows (now)", f"{t_new:.1f}", f"{scored / t_new:,.0f}"],
        ["batched, bf16 (--precision bf16)", f"{t_bf16:.1f}", f"{scored / t_bf16:,.0f}"],
    ]
    print(table(["path", "seconds", "scored tokens/s"], rows))
    q1, med, q3 = np.percentile(ratios, [25, 50, 75])
    print(
        f"\nspeed-up {t_old / t_new:.1f}x in total; per round {med:.1f}x (quartiles "
        f"{q1:.1f}-{q3:.1f}); largest |loss difference| {max(diffs):.1e} nats"
    )
    print(
        f"bf16: {t_old / t_bf16:.1f}x the old loop in total, per round "
        f"{np.median(ratios_bf16):.1f}x; largest relative loss difference {max(diffs_bf16):.1e}"
    )
    print(
        f"training loop forward: {train_rate:,.0f} tokens/s; batched eval reads "
        f"{window_tokens / t_new:,.0f} window tokens/s and scores {scored / t_new:,.0f} "
        f"tokens/s ({train_rate * t_new / scored:.2f}x below the training forward)"
    )
    print(f"loss {loss_sum / scored:.4f} nats/token, perplexity {math.exp(loss_sum / scored):.2f}")


if __name__ == "__main__":
    main()
