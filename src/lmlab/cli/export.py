"""``lmlab export``: a Transformer run as a Hugging Face folder or a GGUF file, for
``transformers``, llama.cpp and Ollama."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a Transformer run as a Hugging Face folder or a GGUF file",
        description="Export a Transformer run: --format hf writes config.json, model.safetensors "
        "and (for BPE tokenizers) tokenizer.json, loadable with transformers' "
        "AutoModelForCausalLM.from_pretrained(DIR); --format gguf writes one file that llama.cpp "
        "loads (llama or gpt2 architecture; --dtype f32, f16 or q8_0).",
        epilog="example: lmlab export --run runs/notes --format gguf --dtype q8_0 --out notes.gguf",
    )
    p.add_argument(
        "--run", "--model", dest="run", required=True, help="run directory (or any model source)"
    )
    p.add_argument(
        "--format", required=True, choices=["hf", "gguf"],
        help="hf: a Hugging Face folder (transformers loads it); gguf: one file for llama.cpp",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="folder (hf) or .gguf file (gguf) to write")
    p.add_argument(
        "--dtype", default="f16", choices=["f32", "f16", "q8_0"], help="GGUF tensor type (f16)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from lmlab.cli._common import one_line_warnings
    from lmlab.errors import LmlabError
    from lmlab.run import load_run

    one_line_warnings()
    out = Path(args.out)
    if out.exists() and not args.overwrite and (out.is_file() or any(out.iterdir())):
        raise LmlabError(f"{out} already exists; pass --overwrite to replace it")
    run_ = load_run(args.run)
    if args.format == "hf":
        from lmlab.interop.hf_export import export_hf

        if out.is_file():
            raise LmlabError(f"{out} is a file; --format hf writes a folder")
        export_hf(run_, out)
    else:
        from lmlab.interop.gguf_export import export_gguf

        if out.is_dir():
            raise LmlabError(f"{out} is a folder; --format gguf writes one .gguf file")
        export_gguf(run_, out, args.dtype)
    print(f"exported {run_.name} ({args.format}) to {out}", file=sys.stderr)
    print(out)
    return 0
