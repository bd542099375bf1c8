"""``lmlab generate``: sample text from a trained run, streaming tokens to the terminal."""

from __future__ import annotations

import argparse
import sys

from lmlab.cli._common import (
    add_model_arg,
    add_sampling_args,
    one_line_warnings,
    sampling_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from a trained model",
        description="Generate text from a run directory, streaming as it goes.",
    )
    add_model_arg(p)
    p.add_argument("--prompt", default="", help="text to continue (default: start a new document)")
    p.add_argument("--prompt-file", help="read the prompt from this UTF-8 file")
    p.add_argument(
        "--crop-prompt",
        action="store_true",
        help="keep the last tokens of a prompt longer than the model's context (default: refuse "
        "it, as lmlab serve does)",
    )
    p.add_argument(
        "--quantized",
        action="store_true",
        help="open a .gguf file or builtin model on its own Q4_0/Q4_1/Q8_0 blocks (int4/int8 "
        "kernels, about a fifth of the float32 memory) instead of dequantising it",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps")
    add_sampling_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmlab.cli._kernel_preload import start_kernel_preload

    start_kernel_preload(args.run)  # overlaps PyTorch's import and the run's loading
    from lmlab.data.sources import iter_file_text
    from lmlab.generate import generate, generate_stream
    from lmlab.run import load_run

    one_line_warnings()
    prompt = args.prompt
    if args.prompt_file:
        from pathlib import Path

        from lmlab.errors import LmlabError

        if not Path(args.prompt_file).is_file():
            raise LmlabError(f"prompt file {args.prompt_file} not found")
        prompt = "".join(iter_file_text(Path(args.prompt_file)))
    params = sampling_from_args(args)
    run_ = load_run(args.run, args.device, quantized=args.quantized)
    from lmlab.errors import LmlabError
    from lmlab.generate.engine import prepare_prompt, warm_up

    warm_up(run_.model, run_.tokenizer, params)  # part of loading: the first token is no dearer

    try:  # over-long: refused, as the server refuses it, unless --crop-prompt
        ids = prepare_prompt(run_.model, run_.tokenizer, prompt,
                             "crop" if args.crop_prompt else "error")  # fmt: skip
    except LmlabError as e:
        raise LmlabError(f"{e}, or pass --crop-prompt to keep its last tokens") from None
    out = sys.stdout
    if params.n > 1:  # several samples: print each whole, one after the other
        for i, c in enumerate(generate(run_.model, run_.tokenizer, ids, params)):
            out.write(f"=== sample {i + 1} ({c.finish_reason}) ===\n{prompt}{c.text}\n")
        return 0
    out.write(prompt)
    for ev in generate_stream(run_.model, run_.tokenizer, ids, params, logprobs=False):
        out.write(ev.text)
        out.flush()
    out.write("\n")
    out.flush()
    return 0
