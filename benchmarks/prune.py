"""Structured pruning of SmolLM2-135M-Instruct's MLP channels (``lmlab prune``): perplexity
against parameter count, for three ways of choosing the channels.

    python benchmarks/prune.py [--speed] [--write]

* calibration: the first 16,384 tokens of *Emma* (the Taylor criterion's |activation x
  gradient|); held-out text: the same 2,000 tokens of *Pride and Prejudice* as
  ``benchmarks/quantize.py`` (one window, as llama.cpp sees them);
* criteria: ``taylor`` (first-order importance on the calibration text), ``activation``
  (mean |activation| x output-weight norm on the same text, forward passes only),
  ``magnitude`` (weight norms, no data) and ``random`` (seeded: the control);
* fractions of every layer's 1,536 MLP channels dropped: 1/8, 1/4, 3/8 and 1/2, rounded to
  multiples of 32 (int4 groups still fit); no fine-tuning afterwards;
* ``--speed``: batch-1 decode tokens/s of the float32 models on the fused decoding kernel
  (one thread; 128 greedy tokens after 32), unpruned against each Taylor-pruned width;
* ``--recover STEPS`` (a section of its own): how much fine-tuning wins back. ``lmlab prune`` writes the
  quarter-pruned run, then ``lmlab train --init-from`` fine-tunes it and, for reference, the
  unpruned model for the same STEPS on *Emma* (batches of 4 x 256 tokens, bf16 autocast,
  both at once, one thread each); both are scored on the same held-out text.

Writes ``benchmarks/out/prune/prune.png`` (perplexity against parameters) and, with
``--write``, the ``prune`` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, results_section, shared, table  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "prune"
LMLAB = str(Path(sys.executable).with_name("lmlab"))
FRACTIONS = (0.125, 0.25, 0.375, 0.5)
CRITERIA = ("taylor", "activation", "magnitude", "random")
CALIBRATION = ("gutenberg", "austen_emma.txt")
CAL_TOKENS = 16384


def change(ppl: float, base: float) -> str:
    """+42% for a modest change; x487 once perplexity has grown more than tenfold."""
    r = ppl / base
    return f"{100 * (r - 1):+.0f}%" if r < 10 else f"x{r:,.0f}"


def perplexity(model, ids) -> float:
    import numpy as np

    from lmlab.evaluate.perplexity import stream_loss

    loss, _ = stream_loss(model, np.asarray(ids), window=2048, batch_tokens=2048)
    return float(np.exp(loss))


def decode_rate(model, tokenizer, new: int = 128) -> float:
    from lmlab.generate import SamplingParams
    from lmlab.generate.engine import generate_stream, warm_up

    warm_up(model, tokenizer)
    prompt = list(range(1000, 1032))
    params = SamplingParams(max_new_tokens=new, temperature=0.0, stop=[])
    best = 0.0
    for _ in range(2):
        t0, n = None, 0
        for _ev in generate_stream(model, tokenizer, prompt, params, logprobs=False,
                                   fast_decode=True):  # fmt: skip
            if t0 is None:
                t0 = time.perf_counter()  # from the first token: decoding only
            n += 1
        best = max(best, (n - 1) / (time.perf_counter() - t0))
    return best


def plot(rows: list[dict], base: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for crit, mark in zip(CRITERIA, "o^sx", strict=True):
        pts = sorted((r["params"], r["ppl"]) for r in rows if r["criterion"] == crit)
        pts.append((base["params"], base["ppl"]))
        ax.plot([p / 1e6 for p, _ in pts], [q for _, q in pts], marker=mark, label=crit)
    ax.set_yscale("log")
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("perplexity, Pride and Prejudice (log scale)")
    ax.set_title("SmolLM2-135M: MLP channels pruned, no fine-tuning")
    ax.legend(title="channels chosen by")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", action="store_true", help="also time batch-1 decoding")
    ap.add_argument("--recover", type=int, metavar="STEPS",
                    help="instead: fine-tune the quarter-pruned and the unpruned model this many "
                    "steps (section prune-recover)")  # fmt: skip
    ap.add_argument("--write", action="store_true", help="write the RESULTS.md section")
    args = ap.parse_args()
    if args.recover:
        from lmlab.run import load_run
        from pretrained import prose_ids

        held = prose_ids(load_run("builtin:smollm2").tokenizer)
        with results_section("prune-recover", args.write, "Pruning, then fine-tuning: SmolLM2"):
            recover(args.recover, held)
        return
    with results_section("prune", args.write, "Structured pruning: SmolLM2's MLP channels"):
        run_bench(args)


def run_bench(args: argparse.Namespace) -> None:
    import torch

    from lmlab.prune import choose_channels, mlp_importance, prune_mlp
    from lmlab.prune.channels import kept_width
    from lmlab.prune.runs import calibration_ids
    from lmlab.run import load_run
    from pretrained import prose_ids

    torch.set_num_threads(1)
    run = load_run("builtin:smollm2", quantized=False)
    model, tok = run.model.float(), run.tokenizer
    held = prose_ids(tok)
    calib = calibration_ids(str(shared(*CALIBRATION)), tok, CAL_TOKENS)
    base = {"params": model.num_params(), "ppl": perplexity(model, held)}
    d_ff = model.config.ff_dim
    rows, seconds = [], {}
    for crit in CRITERIA:
        t0 = time.perf_counter()
        text = calib if crit in ("taylor", "activation") else None
        scores = mlp_importance(model, text, crit, seed=0,
                                progress=sys.stderr.isatty())  # fmt: skip
        seconds[crit] = time.perf_counter() - t0
        for frac in FRACTIONS:
            keep = kept_width(d_ff, frac)
            small = prune_mlp(model, choose_channels(scores, keep))
            row = {"criterion": crit, "fraction": frac, "keep": keep,
                   "params": small.num_params(), "ppl": perplexity(small, held)}  # fmt: skip
            if args.speed and crit == "taylor":
                row["tok_s"] = decode_rate(small, tok)
            rows.append(row)
            print(f"{crit} {frac:g}: {row}", file=sys.stderr, flush=True)
            del small
    if args.speed:  # a copy: the loaded model decodes from the GGUF's 4-bit blocks
        from lmlab.models import Transformer

        base["tok_s"] = decode_rate(
            Transformer.from_tensors(model.config, model.tensors_for_save()), tok
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"base": base, "rows": rows}, indent=1))
    png = OUT / "prune.png"
    plot(rows, base, png)
    print(f"SmolLM2-135M-Instruct (float32, from the package's GGUF), every layer's MLP cut to "
          f"the same width; perplexity on {len(held):,} tokens of *Pride and Prejudice* in one "
          f"window; Taylor importance from {len(calib):,} tokens of *Emma* "
          f"({seconds['taylor']:.0f} s on one thread; activations {seconds['activation']:.0f} s). "
          "No fine-tuning after pruning.\n")  # fmt: skip
    heads = ["MLP width", "dropped", "parameters", *(f"{c} ppl" for c in CRITERIA)]
    if args.speed:
        heads.append("decode tok/s (taylor)")
    first = [str(d_ff), "0", f"{base['params'] / 1e6:.1f}M"]
    first += [f"{base['ppl']:.2f}"] * len(CRITERIA)
    out = [first + ([f"{base['tok_s']:.1f}"] if args.speed else [])]
    for frac in FRACTIONS:
        by = {r["criterion"]: r for r in rows if r["fraction"] == frac}
        t = by["taylor"]
        cells = [str(t["keep"]), f"{d_ff - t['keep']} ({100 * (d_ff - t['keep']) / d_ff:.1f}%)",
                 f"{t['params'] / 1e6:.1f}M ({100 * (t['params'] / base['params'] - 1):+.1f}%)"]  # fmt: skip
        cells += [f"{by[c]['ppl']:.2f} ({change(by[c]['ppl'], base['ppl'])})" for c in CRITERIA]
        if args.speed:
            cells.append(f"{t['tok_s']:.1f} ({t['tok_s'] / base['tok_s']:.2f}x)")
        out.append(cells)
    print(table(heads, out))
    print()
    best = {c: min(r["ppl"] for r in rows if r["criterion"] == c and r["fraction"] == 0.25)
            for c in CRITERIA}  # fmt: skip
    print(f"At a quarter of the channels, Taylor importance costs {change(best['taylor'], base['ppl'])} "
          f"perplexity, activations {change(best['activation'], base['ppl'])}, weight magnitude "
          f"{change(best['magnitude'], base['ppl'])} and random "
          f"choice {change(best['random'], base['ppl'])}. Plot: `{png.relative_to(ROOT)}`. "
          "Reproduce one row as a run: `lmlab prune --run builtin:smollm2 --mlp 0.25 --text "
          f"{'/'.join(('../shared/data',) + CALIBRATION)} --tokens {CAL_TOKENS} --out runs/smollm2-mlp75`.")  # fmt: skip


def recover(steps: int, held: list[int]) -> None:
    """Fine-tune the quarter-pruned run and the unpruned model for ``steps`` on *Emma*."""
    from lmlab.prune.runs import prune_run
    from lmlab.run import load_run

    pruned = OUT / "smollm2-mlp75"
    if not (pruned / "model.safetensors").is_file():
        prune_run("builtin:smollm2", pruned, 0.25, str(shared(*CALIBRATION)), CAL_TOKENS,
                  progress=False)  # fmt: skip
    sources = {"pruned": str(pruned), "unpruned": "builtin:smollm2"}
    procs, t0 = {}, time.perf_counter()
    for name, src in sources.items():
        cmd = [LMLAB, "train", "--init-from", src, "--corpus", str(shared(*CALIBRATION)),
               "--context", "256", "--batch-size", "4", "--steps", str(steps), "--eval-every",
               str(steps), "--precision", "bf16", "--set", "train.threads=1",
               "--set", "train.sample_tokens=0", "--set", "train.eval_batches=8",
               "--set", f"train.warmup={max(1, steps // 10)}",
               "--out", str(OUT / f"tuned-{name}"), "--overwrite"]  # fmt: skip
        log = open(OUT / f"tuned-{name}.log", "w")  # noqa: SIM115 (closed with the process)
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "OMP_NUM_THREADS": "1"}), log)  # fmt: skip
    for p, log in procs.values():
        if p.wait() != 0:
            sys.exit(f"fine-tuning failed; see {log.name}")
        log.close()
    minutes = (time.perf_counter() - t0) / 60
    rows = []
    for name, src in sources.items():
        before = load_run(src, quantized=False).model.float()
        after = load_run(OUT / f"tuned-{name}").model
        rows.append([name, f"{after.num_params() / 1e6:.1f}M", f"{perplexity(before, held):.2f}",
                     f"{perplexity(after, held):.2f}"])  # fmt: skip
    print(f"Recovery: {steps} steps of full fine-tuning (`lmlab train --init-from`, learning rate "
          f"5e-5 after {max(1, steps // 10)} warm-up steps, bf16 autocast, batches of 4 x 256 tokens of *Emma*; both runs at once, one "
          f"thread each, "
          f"{minutes:.0f} min), scored on the same *Pride and Prejudice* tokens:\n")  # fmt: skip
    print(table(["model", "parameters", "ppl before", f"ppl after {steps} steps"], rows))


if __name__ == "__main__":
    main()
