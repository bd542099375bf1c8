"""``lmlab compare``: the ladder from n-grams to Transformers on one split, one budget.

    lmlab compare --corpus ptb.train.txt --valid ptb.valid.txt --test ptb.test.txt \\
        --tokenizer whitespace --minutes 10 --out runs/ladder
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmlab.errors import LmlabError

DEFAULT_MODELS = "ngram3,ngram5,nplm,lstm,transformer"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="train n-gram, NPLM, LSTM and Transformer at one budget and compare them",
        description="The ladder: every model on the same split and tokenizer, neural models "
        "at the same training budget; writes report.md with a table, plots and samples.",
    )
    p.add_argument("--corpus", required=True, help="training text (UTF-8)")
    p.add_argument("--valid", default=None, help="validation text (default: last 10%% of lines)")
    p.add_argument("--test", default=None, help="test text (optional)")
    p.add_argument(
        "--tokenizer",
        default="word",
        choices=("word", "whitespace", "char", "bpe"),
        help="word (default), whitespace (pre-tokenised, e.g. Penn Treebank), char, bpe",
    )
    p.add_argument("--max-vocab", type=int, default=None, help="vocabulary cap (word/char/bpe)")
    p.add_argument(
        "--models", default=DEFAULT_MODELS, help=f"comma-separated rungs (default {DEFAULT_MODELS})"
    )
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--minutes", type=float, help="training wall-clock per neural model")
    budget.add_argument("--tokens", type=int, help="training tokens per neural model")
    p.add_argument("--context", type=int, default=64, help="training window (default 64)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per step (default 32)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for training")
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="NAME=RUN",
        help="also score an existing run trained on this split's data (repeatable)",
    )
    p.add_argument("--out", required=True, help="folder for the runs and the report")
    p.add_argument("--retrain", action="store_true", help="retrain rungs already finished in --out")
    p.add_argument(
        "--rescore",
        action="store_true",
        help="score finished rungs again (same weights) instead of reusing their figures",
    )
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from lmlab.compare.data import prepare_split
    from lmlab.compare.ladder import PRESETS, Budget, load_rung, run_rung
    from lmlab.compare.report import markdown_table, write_report
    from lmlab.evaluate.unknown import count_unk, unk_warning

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in PRESETS]
    if unknown or not names:
        raise LmlabError(
            f"unknown model {unknown[0] if unknown else '(none)'!r}; choose from {', '.join(PRESETS)}"
        )
    if (
        args.minutes is not None
        and args.minutes <= 0
        or args.tokens is not None
        and args.tokens <= 0
    ):
        raise LmlabError("the budget must be positive")
    budget = Budget(
        seconds=args.minutes * 60 if args.minutes is not None else None,
        tokens=args.tokens,
        context=args.context,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
    )
    out = Path(args.out)
    print(f"preparing the split in {out / 'data'}")
    split = prepare_split(
        out / "data", args.corpus, args.valid, args.test, args.tokenizer, args.max_vocab
    )
    unk = count_unk(split.tokenizer, split.valid) / max(1, len(split.valid))
    print(
        f"{len(split.train):,} training tokens, {len(split.valid):,} validation tokens "
        f"({unk:.2%} <unk>), vocabulary {split.tokenizer.vocab_size:,}"
    )
    if warning := unk_warning(unk, "validation tokens"):
        print(warning, file=sys.stderr)
    results = []
    for name in names:
        print(f"--- {name}", flush=True)
        r = run_rung(name, split, out, budget, retrain=args.retrain, rescore=args.rescore)
        test = f", test {r.test_ppl:.2f}" if r.test_ppl is not None else ""
        print(
            f"{name}: valid perplexity {r.valid_ppl:.2f}{test}, {r.params:,} parameters, "
            f"{r.train_seconds:.1f} s",
            flush=True,
        )
        results.append(r)
    for item in args.include:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise LmlabError(f"--include {item!r} is not NAME=RUN_DIR")
        print(f"--- {name} (loaded from {path})", flush=True)
        results.append(load_rung(name, path, split, budget))
    budget_text = f"{args.minutes:g} min" if args.minutes is not None else f"{args.tokens:,} tokens"
    report = write_report(
        results, out, f"Ladder on {Path(args.corpus).name} ({budget_text} per neural model)"
    )
    print("\n" + markdown_table(results))
    print(f"report written to {report}")
    return 0
