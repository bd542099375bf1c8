"""Pieces shared by several CLI verbs."""

from __future__ import annotations

import argparse
import sys
import warnings


def deprecated_alias(
    args: argparse.Namespace, old: str, new: str, old_name: str, flag: str
) -> None:
    """Move a deprecated argument's value (``old``, shown as ``old_name``) to ``new``, the
    destination of ``flag``, with a one-line warning; both given is an error."""
    value = getattr(args, old, None)
    if value is None or value == []:
        return
    if getattr(args, new, None) not in (None, []):
        from lmlab.errors import LmlabError

        raise LmlabError(f"{old_name} is the old form of {flag}; give only {flag}")
    print(f"lmlab: warning: {old_name} is deprecated; use {flag}", file=sys.stderr)
    setattr(args, new, value)


def add_model_arg(p: argparse.ArgumentParser) -> None:
    """``--run`` (alias ``--model``): anything :func:`lmlab.run.load_run` opens."""
    p.add_argument(
        "--run",
        "--model",
        dest="run",
        required=True,
        help="run directory, .gguf file, Hugging Face folder or builtin:smollm2",
    )


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument(
        "--max-new-tokens", type=int, default=200, help="tokens to generate (default 200)"
    )
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    g.add_argument(
        "--top-k", type=int, default=None, help="sample among the K most likely tokens only"
    )
    g.add_argument(
        "--top-p", type=float, default=None,
        help="nucleus sampling: among the most likely tokens whose probabilities add up to P",
    )  # fmt: skip
    g.add_argument(
        "--min-p", type=float, default=None,
        help="drop tokens less likely than MIN_P times the most likely one",
    )  # fmt: skip
    g.add_argument(
        "--repetition-penalty", type=float, default=1.0,
        help="> 1 makes tokens already in the text less likely (default 1: off)",
    )  # fmt: skip
    g.add_argument(
        "--stop", action="append", default=[], help='stop string (repeatable; "\\n" is a newline)'
    )
    g.add_argument("--seed", type=int, default=None, help="random seed (same seed, same text)")
    g.add_argument("-n", "--num-samples", type=int, default=1, help="independent samples")
    g.add_argument(
        "--ignore-eos",
        action="store_true",
        help="go on past the end-of-document token instead of stopping there",
    )


def sampling_from_args(args: argparse.Namespace):
    from lmlab.generate import SamplingParams

    return SamplingParams(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        stop=[s.replace("\\n", "\n").replace("\\t", "\t") for s in args.stop],
        seed=args.seed,
        n=args.num_samples,
        ignore_eos=args.ignore_eos,
    )


def one_line_warnings() -> None:
    """Show warnings as ``lmlab: warning: ...`` on stderr, without source lines."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"lmlab: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
