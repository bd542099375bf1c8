"""``lmlab lab induction``: the induction-head phase change, 2 layers against 1."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "induction",
        help="reproduce the induction-head phase change (2-layer vs 1-layer attention-only)",
        description="Train attention-only Transformers on random tokens that repeat with a "
        "random period, evaluating the loss on the repeated half of held-out [r r] sequences "
        "and every head's prefix-matching score along training. The 2-layer model shows a "
        "sudden drop of the repeat loss together with a jump of a layer-2 head's score; the "
        "1-layer control does not. Writes history.json, induction.png and summary.md.",
        epilog="example: lmlab lab induction --out runs/induction   (about 1 minute on 2 cores)",
    )
    p.add_argument("--out", default="runs/induction", help="output folder (default runs/induction)")
    p.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=[2, 1],
        help="depths to train, one model each (default: 2 1)",
    )
    p.add_argument("--vocab-size", type=int, default=128, help="random tokens (default 128)")
    p.add_argument("--seq-len", type=int, default=64, help="sequence length (default 64)")
    p.add_argument("--d-model", type=int, default=64, help="width (default 64)")
    p.add_argument("--heads", type=int, default=4, help="heads per layer (default 4)")
    p.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per step (default 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument(
        "--eval-every", type=int, default=25, help="measure losses and heads every N steps (25)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmlab.cli.lab._outdir import check_out
    from lmlab.errors import LmlabError
    from lmlab.lab.induction import InductionConfig, run_induction, summary_lines

    if any(n < 1 for n in args.layers):
        raise LmlabError(f"--layers must be positive, got {args.layers}")
    out = check_out(args.out, "history.json", args.overwrite)
    cfg = InductionConfig(
        vocab_size=args.vocab_size,
        seq_len=args.seq_len,
        d_model=args.d_model,
        n_head=args.heads,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        eval_every=args.eval_every,
        seed=args.seed,
        threads=args.threads,
    )
    print(
        f"induction heads: attention-only models of {', '.join(map(str, args.layers))} layers, "
        f"{cfg.vocab_size} tokens, sequences of {cfg.seq_len}, {cfg.steps} steps each"
    )
    results = run_induction(cfg, out, tuple(args.layers), progress=True)
    for line in summary_lines(results, cfg.vocab_size):
        print(line)
    print(f"wrote {out / 'induction.png'}, {out / 'summary.md'}, {out / 'history.json'}")
    return 0
