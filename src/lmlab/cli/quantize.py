"""``lmlab quantize``: weight-only int8 / int4 quantisation of a run into a new run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="quantise a Transformer's weights to int8 or int4 (a new, smaller run)",
        description="Weight-only quantisation of every linear layer (and the token embedding, "
        "with a head tied to it): int8 per output channel, or int4 in groups of 32, 64 or 128 "
        "inputs; symmetric or asymmetric (a float16 scale and zero point per channel or group). "
        "The new run directory holds the quantised tensors in model.safetensors and the scheme "
        "in config.toml's [quantization]; generate, eval, chat, serve and lab probe compute with "
        "the quantised weights. The source may be a run directory, a .gguf file, a Hugging Face "
        "folder or builtin:smollm2.",
        epilog="example: lmlab quantize --run builtin:smollm2 --to int4 --group-size 32 "
        "--out runs/smollm2-int4",
    )
    p.add_argument(
        "--run",
        "--model",
        dest="run",
        required=True,
        help="float run (or model source) to quantise",
    )
    p.add_argument("--to", required=True, choices=["int8", "int4"], help="weight type")
    p.add_argument(
        "--group-size",
        type=int,
        default=None,
        help="int4: inputs sharing a scale, 32, 64 or 128 (default 32); int8 is per channel",
    )
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--symmetric", dest="symmetric", action="store_true", default=None,
        help="zero point fixed at the middle level (default for int8)",
    )  # fmt: skip
    kind.add_argument(
        "--asymmetric", dest="symmetric", action="store_false",
        help="a float zero point per channel or group (default for int4)",
    )  # fmt: skip
    p.add_argument(
        "--embedding-bits",
        type=int,
        choices=[8, 4],
        default=8,
        help="the token embedding's and output head's bits with int4 (default 8, per channel, "
        "as llama.cpp's Q4 files keep them)",
    )
    p.add_argument(
        "--keep-embeddings",
        action="store_true",
        help="leave the token embedding (and a head tied to it) in float",
    )
    p.add_argument("--out", required=True, help="new run directory to write (must not exist)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from lmlab.cli._common import one_line_warnings
    from lmlab.quantize.runs import quantize_run
    from lmlab.quantize.scheme import Scheme

    one_line_warnings()
    bits = 8 if args.to == "int8" else 4
    if bits == 8 and args.group_size is not None:
        from lmlab.errors import LmlabError

        raise LmlabError("int8 is quantised per output channel; --group-size applies to int4 only")
    symmetric = (bits == 8) if args.symmetric is None else args.symmetric
    scheme = Scheme(
        bits=bits,
        group_size=0 if bits == 8 else (args.group_size or 32),
        symmetric=symmetric,
        embeddings=not args.keep_embeddings,
        embedding_bits=8 if bits == 8 else args.embedding_bits,
    )
    t = time.perf_counter()
    out = quantize_run(args.run, args.out, scheme)
    size = (out / "model.safetensors").stat().st_size
    print(
        f"quantised {args.run} ({scheme.name}) into {out}: {size / 1e6:.1f} MB "
        f"in {time.perf_counter() - t:.1f} s",
        file=sys.stderr,
    )
    print(out)
    return 0
