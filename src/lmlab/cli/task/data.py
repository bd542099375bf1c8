"""``lmlab task data``: the built-in data sets, their splits and where they are read from.

lmlab task data                 # the table
lmlab task data sst2 --counts   # one data set: split sizes and examples per class
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="list the built-in data sets for tasks (SST-2, AG News, ChnSentiCorp, ...)",
        description="Built-in labelled data sets, read in place from the shared data folder "
        "($LMLAB_SHARED_DATA, else ../shared/data beside the checkout), with fixed seeded splits.",
    )
    p.add_argument("name", nargs="?", help="show one data set's splits and class counts")
    p.add_argument("--split-seed", type=int, default=None, help="seed of the held-out splits (1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmlab.cli._common import one_line_warnings
    from lmlab.errors import LmlabError
    from lmlab.tasks.datasets import BUILTINS, DEFAULT_SPLIT_SEED, data_root, load_task_data

    one_line_warnings()
    root = data_root()
    if args.name is None:
        print(f"Built-in data sets for `lmlab task train classify --data NAME` (from {root}):")
        for b in BUILTINS.values():
            print(f"  {b.name:<13} {b.language}  {b.description}; splits: {b.split}")
        if not root.is_dir():
            print(f"Not found: {root}; set LMLAB_SHARED_DATA to the shared data folder")
        return 0
    if args.name not in BUILTINS:
        raise LmlabError(f"no built-in data set {args.name!r}; available: {', '.join(BUILTINS)}")
    seed = DEFAULT_SPLIT_SEED if args.split_seed is None else args.split_seed
    data = load_task_data({"builtin": args.name}, seed)
    b = BUILTINS[args.name]
    print(f"{b.name} ({b.language}): {b.description}")
    print(f"splits ({b.split}; seed {seed}): {data.sizes()}")
    width = max(len(n) for n in data.labels)
    print(f"  {'class':<{width}}  {'train':>8} {'validation':>10} {'test':>8}")
    parts = [data.train, data.validation, data.test]
    counts = [p.counts() if p is not None else {} for p in parts]
    for name in data.labels:
        row = "".join(f" {c.get(name, 0):>{w},}" for c, w in zip(counts, (8, 10, 8), strict=True))
        print(f"  {name:<{width}} {row}")
    return 0
