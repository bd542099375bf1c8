"""``lmlab eval``: perplexity and bits per byte of a trained model on a text file."""

from __future__ import annotations

import argparse
import json
import sys

from lmlab.cli._common import add_model_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="perplexity and bits per byte of a model on text",
        description="Score a text with a run's model: every token is predicted from the "
        "text before it (a Transformer slides a --window by --stride, many windows per "
        "forward call). Bits per byte charges each <unk> the spelling of its word, so it "
        "compares across tokenizers; the share of <unk> is reported, with a warning above 1%.",
    )
    add_model_arg(p)
    p.add_argument(
        "--file",
        action="append",
        help="UTF-8 text file(s), folder or glob to score "
        "(default: the run's own validation split)",
    )
    p.add_argument(
        "--window",
        type=int,
        help="Transformer window in tokens (default: the model's context, at most 1024)",
    )
    p.add_argument(
        "--stride", type=int, help="Transformer window stride (default: half the window)"
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default="fp32",
        help="fp32 (default, exact), bf16 autocast (about 1.9x faster on CPUs with native "
        "bf16; scores within ~1e-5), or auto: bf16 where the hardware has it natively",
    )
    p.add_argument(
        "--quantized",
        action="store_true",
        help="open a .gguf file or builtin model on its own Q4_0/Q4_1/Q8_0 blocks (int4/int8 "
        "kernels, about a fifth of the float32 memory) instead of dequantising it",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from lmlab.data.shards import open_dataset
    from lmlab.data.sources import iter_documents, resolve_sources
    from lmlab.errors import LmlabError
    from lmlab.evaluate.perplexity import Score, stream_loss
    from lmlab.evaluate.unknown import (
        count_unk,
        estimated_spelling_bits,
        spelling_bits,
        unk_id,
        unk_warning,
        validation_unknowns,
    )
    from lmlab.run import load_run
    from lmlab.tokenize import WordTokenizer
    from lmlab.train.precision import autocast_dtype

    run_ = load_run(args.run, args.device, quantized=args.quantized)
    tok = run_.tokenizer
    unknown: list[str] | None = []
    if args.file:
        text = "\n".join("".join(doc) for doc in iter_documents(resolve_sources(args.file)))
        if not text.strip():
            raise LmlabError(f"{', '.join(args.file)}: nothing to score (empty text)")
        if isinstance(tok, WordTokenizer):
            body, unknown = tok.encode_unknowns(text)
        else:
            body = tok.encode_array(text)
        first = tok.bos_id if tok.add_bos and tok.bos_id is not None else tok.eos_id
        ids = np.concatenate([[first], body])
        n_bytes = len(text.encode("utf-8"))
        what = ", ".join(args.file)
    else:
        data = (
            open_dataset(run_.path / "data")
            if (run_.path / "data" / "meta.json").is_file()
            else None
        )
        if data is None:
            raise LmlabError(f"{args.run} has no prepared data; pass --file TEXT to score")
        ids = np.asarray(data.val, dtype=np.int64)
        n_bytes = data.meta.val_bytes
        what = "validation split"
        unknown = validation_unknowns(data)
        if unknown and ids[0] == unk_id(tok):  # the first token is context, not scored
            unknown = unknown[1:]
    device = next(iter(run_.model.parameters()), torch.empty(0)).device
    cast = autocast_dtype(args.precision, device)
    loss, n = stream_loss(run_.model, ids, args.stride, args.window, progress=True, autocast=cast)
    n_unk = count_unk(tok, ids[1:])
    estimated = unknown is None
    unk_bits = (
        estimated_spelling_bits(tok, n_unk) if unknown is None else spelling_bits(tok, unknown)
    )
    score = Score(loss, n, n_bytes / max(1, n), n_unk, unk_bits)
    warning = unk_warning(score.unk_rate)
    if warning:
        print(warning, file=sys.stderr)
    if args.json:
        extra = {"unk_spelling": "estimated" if estimated else "exact"} if n_unk else {}
        print(json.dumps({"file": what, **score.as_dict(), **extra}))
        return 0
    print(
        f"{what}: {n:,} tokens, loss {score.loss:.4f} nats/token, perplexity {score.perplexity:.2f}, "
        f"bits per byte {score.bits_per_byte:.4f}"
    )
    if unk_id(tok) is not None:
        how = "estimated, the split's text is gone" if estimated else "each word spelled out"
        charged = (
            f"; bits per byte charges them {unk_bits / n_unk:.1f} bits each ({how}), "
            f"{score.bits_per_byte_without_spelling:.4f} without"
            if n_unk
            else ""
        )
        print(f"<unk>: {n_unk:,} of the scored tokens ({score.unk_rate:.2%}){charged}")
    return 0
