"""``lmlab lab sweep``: train a family of models on a task and store every measurement."""

from __future__ import annotations

import argparse

from lmlab.errors import LmlabError


def _list(kind):
    def parse(text: str):
        try:
            return [kind(t) for t in text.replace(" ", "").split(",") if t]
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {e}") from e

    return parse


def register(sub: argparse._SubParsersAction) -> None:
    from lmlab.lab.defaults import DEFAULT_SEEDS, DEFAULT_SIZES

    p = sub.add_parser(
        "sweep",
        help="train models of several sizes on a task; measure them along training",
        description="Train one Transformer per size x data x steps x seed on TASK (loss on the "
        "answer tokens only), evaluate every metric at log-spaced checkpoints and store the "
        "measurements in a SQLite table. A re-run skips finished runs. Runs in parallel "
        "processes on this machine, or on a Ray cluster with --ray. Three seeds per size by "
        "default, so the report can show the spread and how many seeds agree with each "
        "verdict; the default sweep (4 sizes x 3 seeds) takes about 2.5 minutes on 2 CPU "
        "cores, three times a one-seed sweep (--seeds 0).",
        epilog="example: lmlab lab sweep add:digits=3 --sizes 16x1,32x1,64x2,128x2 "
        "--data 20000 --steps 1500 --db runs/lab/add.sqlite && lmlab lab report --db runs/lab/add.sqlite",
    )
    p.add_argument("task", help="task spec NAME[:KEY=VALUE,...] (see `lmlab lab tasks`)")
    p.add_argument(
        "--sizes",
        type=_list(str),
        default=list(DEFAULT_SIZES),
        help="model sizes WIDTHxLAYERS[xHEADS], comma-separated "
        f"(default {','.join(DEFAULT_SIZES)}: 4k to 400k parameters)",
    )
    p.add_argument(
        "--data",
        type=_list(int),
        default=[10_000],
        help="training problems (comma list; default 10000)",
    )
    p.add_argument(
        "--steps",
        type=_list(int),
        default=[1000],
        help="optimizer steps (comma list; default 1000)",
    )
    p.add_argument(
        "--seeds",
        type=_list(int),
        default=list(DEFAULT_SEEDS),
        help=f"seeds, one run per size and seed (comma list; default "
        f"{','.join(map(str, DEFAULT_SEEDS))}; each seed multiplies the time, --seeds 0 for one)",
    )
    p.add_argument(
        "--db",
        default="runs/lab/results.sqlite",
        help="results database (default runs/lab/results.sqlite)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="parallel processes (default: one per core)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads per run (default: cores / workers)"
    )
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on a Ray cluster (e.g. ray://head:10001 or auto; 'local' starts one here)")  # fmt: skip
    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=int, default=64, help="sequences per step (default 64)")
    g.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default: 1e-2, scaled down as 64/width above width 64)",
    )
    g.add_argument(
        "--weight-decay", type=float, default=0.1, help="AdamW weight decay (default 0.1)"
    )
    g.add_argument(
        "--warmup", type=int, default=50, help="learning-rate warm-up steps (default 50)"
    )
    g.add_argument(
        "--block", choices=["gpt2", "llama"], default="gpt2", help="Transformer block (gpt2)"
    )
    g.add_argument("--test-size", type=int, default=500, help="test problems (default 500)")
    g.add_argument(
        "--evals", type=int, default=8, help="checkpoints evaluated along training (default 8)"
    )
    g.add_argument(
        "--data-seed", type=int, default=0, help="seed of the train/test split (default 0)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmlab.lab.sweep import plan, run_sweep

    for name in ("batch_size", "warmup", "test_size", "evals"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            raise LmlabError(f"--{name.replace('_', '-')} must be positive")
    if min(args.data) < 1 or min(args.steps) < 1:
        raise LmlabError("--data and --steps must be positive")
    specs = plan(
        args.task,
        sizes=args.sizes,
        data=args.data,
        steps=args.steps,
        seeds=args.seeds,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        block=args.block,
        n_test=args.test_size,
        evals=args.evals,
        data_seed=args.data_seed,
    )
    where = f"Ray at {args.ray}" if args.ray else f"{args.workers or 'one per core'} worker(s)"
    print(f"sweep {specs[0].task}: {len(specs)} runs ({len(args.sizes)} sizes x {len(args.data)} "
          f"data x {len(args.steps)} steps x {len(args.seeds)} seeds) on {where}; results in {args.db}")  # fmt: skip

    def show(res) -> None:
        final = res.evals[-1]
        line = (f"  {res.spec.size:>8s} {res.n_params:>10,} params  data {res.spec.data:,}  steps "
                f"{res.spec.steps:,}  seed {res.spec.seed}:  exact match {final['exact_match']:.3f}  "
                f"token acc {final['token_accuracy']:.3f}  loss {final['loss']:.3f}  ({res.wall_s:.0f}s)")  # fmt: skip
        from tqdm import tqdm

        tqdm.write(line)

    summary = run_sweep(
        specs,
        args.db,
        workers=args.workers,
        ray_address=args.ray,
        threads=args.threads,
        on_result=show,
    )
    print(f"{summary.ran} runs trained, {summary.skipped} already in {summary.db} "
          f"({summary.wall_s:.0f}s). Next: lmlab lab report --db {summary.db}")  # fmt: skip
    return 0
