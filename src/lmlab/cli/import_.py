"""``lmlab import``: a pretrained model (GGUF file, Hugging Face folder, built-in name) as a
run directory that every other command takes."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="turn a GGUF file or Hugging Face checkpoint into an lmlab run directory",
        description="Read a pretrained model into lmlab's own Transformer and save it as a run "
        "directory (config.toml, tokenizer.json, model.safetensors, chat_template.json, card.md). "
        "Sources: a .gguf file (llama, gpt2), a local Hugging Face folder (LlamaForCausalLM, "
        "GPT2LMHeadModel; safetensors only) or builtin:smollm2. GGUF weights are dequantised "
        "to float32.",
        epilog="example: lmlab import builtin:smollm2 --out runs/smollm2",
    )
    p.add_argument("source", help="a .gguf file, a Hugging Face folder or builtin:NAME")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from lmlab.interop.sources import import_model

    t = time.perf_counter()
    out = import_model(args.source, args.out, overwrite=args.overwrite)
    print(f"imported {args.source} into {out} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    print(out)
    return 0
