"""``lmlab info``: what a run directory holds: model, size, data, final metrics."""

from __future__ import annotations

import argparse
import json
import math
import struct
from pathlib import Path

from lmlab.cli._common import add_model_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a run directory")
    add_model_arg(p)
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = describe_from_files(args.run) or describe_loaded(args.run)
    path = Path(info["run"])
    metrics = path / "metrics.jsonl"
    if metrics.is_file():
        evals = [
            json.loads(ln)
            for ln in metrics.read_text(encoding="utf-8").splitlines()
            if "val_loss" in ln
        ]
        if evals:
            info["last_eval"] = evals[-1]
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['run']}: {info['family']} model, {info['parameters']:,} parameters")
    print(
        f"  tokenizer: {info['tokenizer']}, vocabulary {info['vocab_size']:,}; context: {info['context_length'] or 'unbounded'}"
    )
    print("  config: " + ", ".join(f"{k}={v}" for k, v in info["model"].items()))
    if "last_eval" in info:
        e = info["last_eval"]
        print(
            f"  last evaluation (step {e['step']}): loss {e['val_loss']:.4f}, perplexity {e['val_ppl']:.2f}"
            + (f", bits/byte {e['val_bpb']:.3f}" if e.get("val_bpb") else "")
        )
    return 0


def describe_loaded(run: str) -> dict:
    """The description of any run, pretrained model or file, from the loaded model."""
    from lmlab.run import load_run

    r = load_run(run)
    return {
        "run": str(r.path),
        "family": r.family,
        "parameters": r.model.num_params(),
        "tokenizer": r.tokenizer.kind,
        "vocab_size": r.tokenizer.vocab_size,
        "context_length": r.model.context_length,
        "model": {k: v for k, v in r.config["model"].items() if k != "family"},
    }


def describe_from_files(run: str) -> dict | None:
    """The same description read from a run directory's files alone (config, tokenizer and
    the safetensors header), without PyTorch: the command then starts in a tenth of a
    second. For float Transformer and n-gram runs; None for anything else (LoRA, quantised,
    other families, unreadable files), which :func:`describe_loaded` handles and reports."""
    from lmlab.config import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, load_toml
    from lmlab.tokenize import load_tokenizer

    p = Path(run)
    try:
        cfg = load_toml(p / CONFIG_FILE)
        model = dict(cfg["model"])
        family = model.pop("family")
        lora = cfg.get("init", {}).get("lora") is not None
        if family not in ("transformer", "ngram") or "quantization" in cfg or lora:
            return None
        sizes = _tensor_sizes(p / MODEL_FILE)
        if family == "transformer":
            params, context = sum(sizes.values()), int(model["context_length"])
        else:  # NGramModel.num_params: unigram log-probs and backoffs, then each order's
            order = int(model["order"])
            params = 2 * int(model["vocab_size"]) + sum(
                sizes[f"logp_{k}"] + (sizes[f"bow_{k}"] if k < order else 0)
                for k in range(2, order + 1)
            )
            context = None
        tok = load_tokenizer(p / TOKENIZER_FILE)
    except Exception:  # noqa: BLE001 - describe_loaded says what is wrong with the run
        return None
    return {
        "run": str(p),
        "family": family,
        "parameters": params,
        "tokenizer": tok.kind,
        "vocab_size": tok.vocab_size,
        "context_length": context,
        "model": model,
    }


def _tensor_sizes(path: Path) -> dict[str, int]:
    """Element counts of a safetensors file's tensors, from its JSON header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {k: math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__"}
