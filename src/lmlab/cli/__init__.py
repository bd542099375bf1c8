"""``lmlab`` command line: one module per verb in this package, each thin.

Each module ``lmlab/cli/<verb>.py`` defines ``register(subparsers)``, which adds its parser
and sets ``func`` (taking the parsed ``argparse.Namespace``, returning an exit code).
Modules are discovered automatically, so a new verb is a new file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from lmlab import __version__
from lmlab._allocator import tune_allocator
from lmlab.errors import LmlabError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmlab",
        description="Train, compare and use language models on your own text, "
        "from n-grams to Transformers.",
    )
    parser.add_argument("--version", action="version", version=f"lmlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    tune_allocator()
    try:
        return int(args.func(args) or 0)
    except LmlabError as e:
        print(f"lmlab: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("lmlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lmlab generate ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
