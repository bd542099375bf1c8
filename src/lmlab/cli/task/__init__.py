"""``lmlab task``: applications (classify now; qa, translate, summarize, chat later).

One verb scheme for every task kind:

    lmlab task train KIND --data DATA --model MODEL --out RUN [options]
    lmlab task eval --run RUN [--split test|validation] [--data FILE ...]
    lmlab task predict --run RUN [TEXT ... | --file F | stdin] [--explain]
    lmlab task data

Each module ``lmlab/cli/task/<verb>.py`` defines ``register(subparsers)``, discovered
automatically like the top-level verbs.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "task",
        help="applications: train, evaluate and use task models (classification, QA, translation)",
        description="Train a model for a task on labelled data, measure it, and use it on new "
        "text. Task runs are run directories with a [task] section.",
    )
    sub = parser.add_subparsers(dest="task_command", metavar="ACTION")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.ispkg:  # kinds/: per-kind options, not a verb
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
