"""``lmlab info``: what a run directory holds: model, size, data, final metrics."""

from __future__ import annotations

import argparse
import json

from lmlab.cli._common import add_model_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a run directory")
    add_model_arg(p)
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmlab.run import load_run

    r = load_run(args.run)
    info = {
        "run": str(r.path),
        "family": r.family,
        "parameters": r.model.num_params(),
        "tokenizer": r.tokenizer.kind,
        "vocab_size": r.tokenizer.vocab_size,
        "context_length": r.model.context_length,
        "model": {k: v for k, v in r.config["model"].items() if k != "family"},
    }
    metrics = r.path / "metrics.jsonl"
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
