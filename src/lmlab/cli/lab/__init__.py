"""``lmlab lab``: the emergence lab (synthetic tasks, sweeps, reproductions, probes, report).

Each module ``lmlab/cli/lab/<verb>.py`` defines ``register(subparsers)`` for one
``lmlab lab <verb>`` sub-command, discovered automatically like the top-level verbs.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="emergence lab: synthetic tasks, scale sweeps, grokking, induction heads, report",
        description="Watch abilities appear with scale, and tell real emergence from "
        "metric artefacts.",
    )
    sub = parser.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
