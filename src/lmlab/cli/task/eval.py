"""``lmlab task eval``: score a task run on its own split or on another labelled file.

lmlab task eval --run runs/sst2-cnn                      # the run's test split
lmlab task eval --run runs/sst2-cnn --split validation
lmlab task eval --run runs/sst2-cnn --data more.tsv --text-column sentence --label-column label
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="accuracy, macro-F1 (95%% bootstrap intervals), per-class scores of a task run",
        description="Score a task run on the test (or validation) split it was trained with, "
        "rebuilt from its [task] data spec and split seed, or on another labelled file.",
    )
    p.add_argument("--run", required=True, help="task run directory")
    p.add_argument("--split", choices=["test", "validation", "train"], default=None,
                   help="which split of the run's data (default: test, else validation)")  # fmt: skip
    p.add_argument("--data", help="score on this labelled file instead (TSV/CSV/JSONL)")
    p.add_argument("--text-column", help="--data's text column (name or 0-based index)")
    p.add_argument("--label-column", help="--data's label column (name or 0-based index)")
    p.add_argument("--format", choices=["tsv", "csv", "jsonl"], help="--data's format")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (1000; 0 off)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    p.add_argument("--confusion", help="also write the confusion matrix as this PNG")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    from lmlab.cli.task.kinds import all_kind_modules

    for module in all_kind_modules().values():  # kinds with options of their own
        if hasattr(module, "add_eval_arguments"):
            module.add_eval_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmlab.cli._common import one_line_warnings
    from lmlab.errors import LmlabError
    from lmlab.tasks.data import read_examples
    from lmlab.tasks.rundir import load_task_run

    one_line_warnings()
    task_run = load_task_run(args.run)
    from lmlab.cli.task.kinds import kind_module
    from lmlab.tasks.rundir import task_config

    kind_cli = kind_module(task_config(args.run)["task"]["kind"])
    if hasattr(kind_cli, "evaluate"):
        return kind_cli.evaluate(args, task_run)
    if args.data:
        if args.split:
            raise LmlabError("--split chooses among the run's own splits; drop it with --data")
        examples = read_examples(args.data, args.text_column, args.label_column, args.format)
        where = args.data
    else:
        if args.text_column or args.label_column or args.format:
            raise LmlabError("--text-column/--label-column/--format describe --data; give --data")
        data = task_run.task_data()
        split = args.split or ("test" if data.test is not None else "validation")
        examples = data.split(split)
        where = f"{data.name} {split}"
    report = task_run.evaluate(examples, args.bootstrap, args.seed)
    if args.json:
        print(json.dumps({"data": where, **report.to_dict()}, ensure_ascii=False))
    else:
        print(f"{Path(args.run).name} on {where}:")
        print(report.format())
    if args.confusion:
        from lmlab.tasks.plots import plot_confusion

        out = plot_confusion(report.confusion, report.labels, Path(args.confusion),
                             title=f"{where}: accuracy {report.accuracy:.3f}")  # fmt: skip
        print(f"confusion matrix: {out}")
    return 0
