"""``lmlab data``: list built-in corpora, download one, or prepare your own into token shards."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="list built-in corpora, download or prepare a corpus",
        description="Built-in corpora and corpus preparation.",
    )
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    ls = dsub.add_parser("list", help="list built-in corpora")
    ls.set_defaults(func=run_list)
    prep = dsub.add_parser(
        "prepare",
        help="tokenise text into train/val token files",
        description="Read files, folders, globs, JSONL fields or builtin:NAME and write "
        "tokenizer.json, train.bin, val.bin and meta.json to --out.",
    )
    prep.add_argument("corpus", nargs="*", help="file, folder, glob or builtin:NAME")
    prep.add_argument("--url", help="download the corpus from this URL first (needs --sha256)")
    prep.add_argument("--sha256", help="expected SHA-256 of the download")
    prep.add_argument("--jsonl-field", help="read this field of each JSONL record")
    prep.add_argument(
        "--tokenizer", choices=["char", "word", "bpe"], default="char", help="tokenizer kind (char)"
    )
    prep.add_argument("--vocab-size", type=int, help="BPE vocabulary size / word vocabulary cap")
    prep.add_argument("--lowercase", action="store_true", help="word tokenizer: lowercase")
    prep.add_argument(
        "--val-fraction", type=float, default=0.1, help="share held out for validation (0.1)"
    )
    prep.add_argument("--out", required=True, help="dataset directory to write")
    prep.set_defaults(func=run_prepare)
    p.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from lmlab.data.builtin import INSTALL_HINT, list_builtins

    rows = list_builtins()
    print("Built-in corpora (use as --corpus builtin:NAME):")
    for name, desc, _installed in rows:
        print(f"  {name:<22} {desc}")
    if rows and not rows[0][2]:
        print(f"Not installed: {INSTALL_HINT}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lmlab.data.download import download
    from lmlab.data.shards import prepare_dataset
    from lmlab.data.sources import resolve_sources
    from lmlab.errors import LmlabError

    specs = list(args.corpus)
    out = Path(args.out)
    if args.url:
        if not args.sha256:
            raise LmlabError(
                "--url needs --sha256 HEX (the expected hash) so the download can be checked"
            )
        specs.append(str(download(args.url, args.sha256, out / "raw")))
    if not specs:
        raise LmlabError("nothing to prepare: give files, folders, globs, builtin:NAME or --url")
    opts: dict = {}
    if args.vocab_size:
        opts["max_vocab" if args.tokenizer == "word" else "vocab_size"] = args.vocab_size
    if args.lowercase:
        if args.tokenizer != "word":
            raise LmlabError("--lowercase applies to the word tokenizer only")
        opts["lowercase"] = True
    sources = resolve_sources(specs, args.jsonl_field)
    tok, meta = prepare_dataset(
        sources,
        out,
        tokenizer_kind=args.tokenizer,
        tokenizer_options=opts,
        val_fraction=args.val_fraction,
    )
    print(
        f"lmlab: {len(sources)} file(s) -> {meta.train_tokens:,} train + {meta.val_tokens:,} validation tokens "
        f"({tok.kind} tokenizer, vocabulary {tok.vocab_size:,}, {meta.dtype}) in {out}"
    )
    print(f"lmlab: train on it with: lmlab train --data {out} --out runs/NAME")
    return 0
