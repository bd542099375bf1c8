"""``lmlab ngram``: build a Kneser-Ney n-gram model, score text, convert to and from ARPA.

lmlab ngram build --corpus train.txt --order 5 --out runs/kn5 [--tokenizer whitespace]
lmlab ngram eval --run runs/kn5 --file valid.txt
lmlab ngram export-arpa --run runs/kn5 [--out runs/kn5/model.arpa]
lmlab ngram import-arpa model.arpa --out runs/imported
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lmlab.errors import LmlabError

TOKENIZERS = ("word", "whitespace", "char", "bpe")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ngram",
        help="build, evaluate, export and import n-gram (Kneser-Ney / ARPA) models",
        description="Count-based language models: interpolated modified Kneser-Ney "
        "(as KenLM's lmplz), ARPA files in and out.",
    )
    sub = p.add_subparsers(dest="ngram_command", metavar="ACTION")

    b = sub.add_parser("build", help="estimate a Kneser-Ney model from a text file")
    b.add_argument("--corpus", required=True, help="training text (UTF-8)")
    b.add_argument("--order", type=int, default=5, help="n-gram order, 1 to 6 (default 5)")
    b.add_argument("--out", required=True, help="run directory to write")
    b.add_argument(
        "--tokenizer",
        choices=TOKENIZERS,
        default="word",
        help="word (regex words, default), whitespace (pre-tokenised text such as Penn "
        "Treebank: split on spaces, one sentence a line), char or bpe",
    )
    b.add_argument(
        "--max-vocab",
        type=int,
        default=None,
        help="vocabulary cap for word/bpe tokenizers (default: all words; bpe 4096)",
    )
    b.add_argument(
        "--tokenizer-file", default=None, help="reuse this tokenizer.json instead of learning one"
    )
    b.add_argument("--overwrite", action="store_true", help="replace an existing run")
    b.set_defaults(func=cmd_build)

    e = sub.add_parser("eval", help="perplexity of a text under an n-gram run")
    e.add_argument("--run", required=True, help="n-gram run directory")
    e.add_argument("--file", help="UTF-8 text file to score (as in lmlab eval --file)")
    e.add_argument("--text", dest="text_deprecated", help="deprecated: the old name of --file")
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser("export-arpa", help="write a run's model as an ARPA file (KenLM, SRILM)")
    x.add_argument("--run", required=True, help="n-gram run directory")
    x.add_argument("--out", default=None, help="ARPA file (default RUN/model.arpa)")
    x.set_defaults(func=cmd_export)

    i = sub.add_parser("import-arpa", help="turn an ARPA file into an lmlab run")
    i.add_argument("arpa", help="ARPA file to read")
    i.add_argument("--out", required=True, help="run directory to write")
    i.add_argument(
        "--tokenizer-file",
        default=None,
        help="map ARPA words onto this tokenizer.json (default: a word "
        "tokenizer of the ARPA vocabulary, whitespace splitting)",
    )
    i.add_argument("--overwrite", action="store_true", help="replace an existing run")
    i.set_defaults(func=cmd_import)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _check_out(out: str, overwrite: bool) -> Path:
    d = Path(out)
    if d.exists() and any(d.iterdir()) and not overwrite:
        raise LmlabError(
            f"{d} already exists and is not empty; pass --overwrite or pick another --out"
        )
    return d


def cmd_build(args: argparse.Namespace) -> int:
    from lmlab.models.kneser_ney import estimate
    from lmlab.models.ngram_io import encode_for, save_run
    from lmlab.models.pretokenized import read_text, whitespace_tokenizer
    from lmlab.tokenize import load_tokenizer, train_tokenizer

    out = _check_out(args.out, args.overwrite)
    if not 1 <= args.order <= 6:
        raise LmlabError(f"--order must be between 1 and 6, got {args.order}")
    text = read_text(args.corpus)
    split = "whitespace" if args.tokenizer == "whitespace" else "tokenizer"
    print(f"reading {args.corpus} ({len(text):,} characters)")
    if args.tokenizer_file:
        tokenizer = load_tokenizer(args.tokenizer_file)
    elif args.tokenizer == "whitespace":
        tokenizer = whitespace_tokenizer([text])
    else:
        opts = {}
        if args.max_vocab is not None:
            opts = {
                "word": {"max_vocab": args.max_vocab},
                "bpe": {"vocab_size": args.max_vocab},
                "char": {"max_chars": args.max_vocab},
            }[args.tokenizer]
        elif args.tokenizer == "word":
            opts = {"max_vocab": None}
        tokenizer = train_tokenizer(args.tokenizer, [text], **opts)
    ids = encode_for(tokenizer, text, split)
    print(
        f"{len(ids):,} tokens, vocabulary {tokenizer.vocab_size:,}; "
        f"estimating a {args.order}-gram Kneser-Ney model"
    )
    t0 = time.perf_counter()
    tables = estimate(ids, args.order, tokenizer.vocab_size, tokenizer.eos_id)
    seconds = time.perf_counter() - t0
    counts = [len(k) for k in tables.keys]
    sizes = ", ".join(f"{k}-grams {n:,}" for k, n in enumerate(counts, start=1))
    print(f"built in {seconds:.2f} s: {sizes}")
    info = {
        "split": split,
        "corpus": str(args.corpus),
        "tokens": int(len(ids)),
        "build_seconds": round(seconds, 3),
    }
    save_run(out, tables, tokenizer, info)
    print(f"run written to {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from lmlab.cli._common import deprecated_alias
    from lmlab.evaluate.unknown import unk_warning
    from lmlab.models.ngram_io import encode_file, load_run

    deprecated_alias(args, "text_deprecated", "file", "--text", "--file")
    if not args.file:
        raise LmlabError("give the text to score: lmlab ngram eval --run RUN --file FILE")
    args.text = args.file
    model, tokenizer, info = load_run(args.run)
    ids = encode_file(tokenizer, args.text, info.get("split", "tokenizer"))
    if len(ids) == 0:
        raise LmlabError(f"{args.text} has no tokens to score")
    t0 = time.perf_counter()
    s = model.score(ids)
    seconds = time.perf_counter() - t0
    unk = tokenizer.special_tokens.get("<unk>")
    oov = float((ids == unk).mean()) if unk is not None else 0.0
    ppl = float(10.0 ** (-s.mean()))
    print(
        f"{args.text}: {len(ids):,} tokens ({oov:.2%} <unk>), "
        f"log10 prob {s.sum():.2f}, perplexity {ppl:.2f} (scored in {seconds:.2f} s)"
    )
    if warning := unk_warning(oov):
        print(warning, file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lmlab.models.ngram_io import export_arpa, load_run

    model, tokenizer, _ = load_run(args.run)
    out = Path(args.out) if args.out else Path(args.run) / "model.arpa"
    export_arpa(model, tokenizer, out)
    print(f"ARPA file written to {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from lmlab.models.ngram_io import import_arpa, save_run
    from lmlab.tokenize import load_tokenizer

    out = _check_out(args.out, args.overwrite)
    tokenizer = load_tokenizer(args.tokenizer_file) if args.tokenizer_file else None
    model, tokenizer = import_arpa(args.arpa, tokenizer)
    split = "tokenizer" if args.tokenizer_file else "whitespace"
    save_run(out, model, tokenizer, {"split": split, "arpa": str(args.arpa)})
    sizes = ", ".join(f"{k}-grams {n:,}" for k, n in enumerate(model.ngram_counts(), start=1))
    print(f"read {args.arpa}: {sizes}; run written to {out}")
    return 0
