"""``lmlab task train KIND``: train a task model into a run directory.

Every kind is a sub-command with its own options (``lmlab/cli/task/kinds/<kind>.py``):

lmlab task train classify --data sst2 --model textcnn --out runs/sst2-cnn
lmlab task train classify --data reviews.csv --text-column review --label-column stars \
    --model bilstm --out runs/reviews
"""

from __future__ import annotations

import argparse

from lmlab.cli.task.kinds import all_kind_modules
from lmlab.tasks import KINDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help=f"train a task model ({', '.join(KINDS)}) into a run directory",
        description="Train a model for task KIND into a run directory; "
        "lmlab task train KIND --help lists the kind's options.",
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, module in all_kind_modules().items():
        kp = kinds.add_parser(kind, help=module.HELP, description=module.HELP)
        module.add_arguments(kp)
        kp.set_defaults(func=run, kind_cli=module)


def run(args: argparse.Namespace) -> int:
    import sys

    from lmlab.cli._common import one_line_warnings
    from lmlab.tasks.rundir import task_module

    one_line_warnings()
    cfg = args.kind_cli.build_config(args)
    module = task_module(args.kind)
    _, reports = module.train_run(cfg, args.out, overwrite=args.overwrite)
    args.kind_cli.report(args, reports)
    sys.stdout.flush()
    return 0
