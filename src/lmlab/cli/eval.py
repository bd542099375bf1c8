"""``lmlab eval``: perplexity and bits per byte of a trained model on a text file."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="perplexity and bits per byte of a model on text",
        description="Score a text with a run's model: every token is predicted from the "
        "text before it (a Transformer slides its window by --stride).",
    )
    p.add_argument(
        "--run",
        "--model",
        dest="run",
        required=True,
        help="run directory, .gguf file, Hugging Face folder or builtin:smollm2",
    )
    p.add_argument(
        "--file",
        action="append",
        help="UTF-8 text file(s), folder or glob to score "
        "(default: the run's own validation split)",
    )
    p.add_argument(
        "--stride", type=int, help="Transformer window stride (default: half the context)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lmlab.data.shards import open_dataset
    from lmlab.data.sources import iter_documents, resolve_sources
    from lmlab.errors import LmlabError
    from lmlab.evaluate.perplexity import Score, stream_loss
    from lmlab.run import load_run

    run_ = load_run(args.run, args.device)
    tok = run_.tokenizer
    if args.file:
        text = "\n".join("".join(doc) for doc in iter_documents(resolve_sources(args.file)))
        if not text.strip():
            raise LmlabError(f"{', '.join(args.file)}: nothing to score (empty text)")
        ids = np.concatenate([[tok.eos_id], tok.encode_array(text)])
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
    loss, n = stream_loss(run_.model, ids, args.stride)
    score = Score(loss, n, n_bytes / max(1, n))
    if args.json:
        print(json.dumps({"file": what, **score.as_dict()}))
    else:
        print(
            f"{what}: {n:,} tokens, loss {score.loss:.4f} nats/token, perplexity {score.perplexity:.2f}, "
            f"bits per byte {score.bits_per_byte:.4f}"
        )
    return 0
