"""``lmlab prune``: structured pruning of a Transformer's MLP channels into a new run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="drop the least important MLP channels of a Transformer (a new, smaller run)",
        description="Structured pruning: every layer's MLP keeps the same number of channels, "
        "the most important ones (default: first-order Taylor importance, |activation x "
        "gradient| summed over --tokens tokens of --text), and the weights are sliced into a "
        "narrower model: fewer parameters and faster steps, not a sparse mask. The new run is "
        "an ordinary float run that every command opens; quantise it with lmlab quantize, or "
        "fine-tune it with lmlab train --init-from to recover what pruning cost. The source "
        "may be a run directory, a .gguf file, a Hugging Face folder or builtin:smollm2.",
        epilog="example: lmlab prune --run builtin:smollm2 --mlp 0.25 --text book.txt "
        "--out runs/smollm2-mlp75",
    )
    p.add_argument("--run", "--model", dest="run", required=True,
                   help="float Transformer run (or model source) to prune")  # fmt: skip
    p.add_argument("--mlp", type=float, required=True, metavar="FRACTION",
                   help="share of every layer's MLP channels to drop, between 0 and 1")  # fmt: skip
    p.add_argument("--text", help="calibration text: FILE|FOLDER|GLOB|builtin:NAME "
                   "(needed by taylor and activation)")  # fmt: skip
    p.add_argument("--tokens", type=int, default=16384,
                   help="calibration tokens read from --text (16384)")  # fmt: skip
    p.add_argument("--criterion", choices=["taylor", "activation", "magnitude", "random"],
                   default="taylor", help="channel importance: taylor (default; needs --text), "
                   "activation (mean |activation| x output norm, forward passes only; needs "
                   "--text), magnitude (weight norms, no data) or random (a control)")  # fmt: skip
    p.add_argument("--multiple", type=int, default=32,
                   help="the width kept is a multiple of this (32: int4 groups still fit)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the random criterion (0)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--out", required=True, help="new run directory to write (must not exist)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from lmlab.cli._common import one_line_warnings
    from lmlab.prune.runs import prune_run

    one_line_warnings()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    rep = prune_run(args.run, args.out, args.mlp, args.text, args.tokens, args.criterion,
                    args.multiple, args.seed, progress=sys.stderr.isatty())  # fmt: skip
    print(
        f"pruned {args.run} into {rep.out}: MLP width {rep.d_ff} -> {rep.kept} per layer, "
        f"{rep.params_before:,} -> {rep.params_after:,} parameters "
        f"({100 * (1 - rep.params_after / rep.params_before):.1f}% fewer) "
        f"in {time.perf_counter() - t:.1f} s",
        file=sys.stderr,
    )
    print(rep.out)
    return 0
