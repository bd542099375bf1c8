"""``lmlab train``: train a language model on your text into a run directory."""

from __future__ import annotations

import argparse

from lmlab.config import apply_overrides, load_toml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a language model on your text",
        description="Train a model on a corpus into a run directory (config.toml, tokenizer.json, "
        "model.safetensors, metrics.jsonl, loss.png, samples.txt, card.md). Settings come from "
        "defaults, then --config FILE.toml, then the flags below, then --set KEY=VALUE.",
    )
    p.add_argument(
        "--out", "--run", dest="out", required=True, help="run directory, e.g. runs/mine"
    )
    p.add_argument(
        "--corpus",
        action="append",
        default=None,
        help="text file, folder, glob or builtin:NAME (repeatable)",
    )
    p.add_argument("--jsonl-field", help="read this field of each JSONL record as a document")
    p.add_argument(
        "--data", help="a dataset prepared with `lmlab data prepare` (instead of --corpus)"
    )
    p.add_argument(
        "--val-fraction", type=float, help="share of the text held out for validation (0.1)"
    )
    p.add_argument("--tokenizer", choices=["char", "word", "bpe"], help="tokenizer kind (char)")
    p.add_argument("--vocab-size", type=int, help="BPE vocabulary size / word vocabulary cap")
    p.add_argument(
        "--lowercase", action="store_true", default=None, help="word tokenizer: lowercase text"
    )
    p.add_argument(
        "--model", choices=["transformer", "rnn", "nplm"], help="model family (transformer)"
    )
    p.add_argument("--depth", type=int, help="transformer scale dial: layers; width = 64 x depth")
    p.add_argument("--block", choices=["gpt2", "llama"], help="transformer block style")
    p.add_argument(
        "--steps", type=int,
        help="optimizer steps to train (1000); with --resume, the new total to reach",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, help="sequences per step (32)")
    p.add_argument("--context", type=int, help="training window in tokens")
    p.add_argument("--lr", type=float, help="peak learning rate (1e-3)")
    p.add_argument("--eval-every", type=int, help="validate (and checkpoint) every N steps (250)")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        help="fp32 (default), bf16 autocast, or auto: bf16 where the hardware has it natively",
    )
    p.add_argument("--time-limit", type=float, help="stop after this many seconds")
    p.add_argument("--seed", type=int, help="random seed (1337)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--config", help="TOML file with [data] [tokenizer] [model] [train] sections")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set model.n_layer=6 --set train.warmup=50",
    )
    p.add_argument(
        "--init-embeddings",
        metavar="VECTORS",
        help="initialise a word-level model's embedding layer from word2vec/GloVe vectors",
    )
    p.add_argument(
        "--freeze-embeddings", action="store_true", help="keep --init-embeddings vectors fixed"
    )
    g = p.add_argument_group("fine-tuning a pretrained model")
    g.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start from this model (a run directory, .gguf file, Hugging Face folder or "
        "builtin:smollm2): its config and tokenizer, its weights, a fresh optimizer",
    )
    g.add_argument(
        "--lora",
        action="store_true",
        help="train low-rank adapters (peft) instead of every weight; the run keeps only them",
    )
    g.add_argument("--lora-rank", type=int, help="adapter rank r (8)")
    g.add_argument("--lora-alpha", type=float, help="adapter scale alpha; updates x alpha/r (16)")
    g.add_argument("--lora-dropout", type=float, help="dropout on the adapters' input (0)")
    g.add_argument(
        "--lora-targets",
        metavar="NAMES",
        help="comma-separated linear layers to adapt "
        "(default: attn.qkv,attn.proj,mlp.gate_up|mlp.fc,mlp.proj)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    p.set_defaults(func=run)


LORA_FLAGS = ("lora_rank", "lora_alpha", "lora_dropout", "lora_targets")


def build_config(args: argparse.Namespace) -> dict:
    from lmlab.train.runner import default_config, merge

    init_from = getattr(args, "init_from", None)
    cfg = default_config(init_from)
    if args.config:
        cfg = merge(cfg, load_toml(args.config))
    if getattr(args, "lora", False):
        lora: dict = {}
        for name in LORA_FLAGS:
            v = getattr(args, name)
            if v is not None:
                key = name.removeprefix("lora_")
                lora[key] = (
                    [t.strip() for t in v.split(",") if t.strip()] if key == "targets" else v
                )
        cfg["init"] = {
            **cfg.get("init", {}),
            "lora": {**cfg.get("init", {}).get("lora", {}), **lora},
        }
    flags: dict[str, dict] = {"data": {}, "tokenizer": {}, "model": {}, "train": {}}
    if args.corpus:
        flags["data"]["corpus"] = args.corpus
    if args.jsonl_field:
        flags["data"]["jsonl_field"] = args.jsonl_field
    if args.data:
        flags["data"]["dataset"] = args.data
    if args.val_fraction is not None:
        flags["data"]["val_fraction"] = args.val_fraction
    if args.tokenizer:
        flags["tokenizer"]["kind"] = args.tokenizer
    kind = flags["tokenizer"].get("kind", cfg["tokenizer"].get("kind"))
    if args.vocab_size is not None:
        flags["tokenizer"]["max_vocab" if kind == "word" else "vocab_size"] = args.vocab_size
    if args.lowercase:
        flags["tokenizer"]["lowercase"] = True
    if args.model:
        if args.model != cfg["model"].get("family"):
            cfg["model"] = {"family": args.model}
        flags["model"]["family"] = args.model
    if args.depth is not None:
        flags["model"]["depth"] = args.depth
    if args.block:
        flags["model"]["block"] = args.block
    for name in (
        "steps",
        "batch_size",
        "context",
        "lr",
        "eval_every",
        "precision",
        "time_limit",
        "seed",
        "device",
    ):
        v = getattr(args, name)
        if v is not None:
            flags["train"][name] = v
    if "eval_every" in flags["train"]:
        flags["train"].setdefault("checkpoint_every", flags["train"]["eval_every"])
    cfg = merge(cfg, flags)
    if cfg["model"].get("family", "transformer") != "transformer":
        cfg["model"].pop("depth", None)
    return apply_overrides(cfg, args.set)


def run(args: argparse.Namespace) -> int:
    from lmlab.cli._common import one_line_warnings
    from lmlab.errors import LmlabError
    from lmlab.train.runner import run_training

    one_line_warnings()
    check_init_flags(args)
    init = None
    if args.resume:
        cfg: dict = {}
    else:
        cfg = build_config(args)
        if not cfg["data"].get("corpus") and not cfg["data"].get("dataset"):
            raise LmlabError(
                "no training text: pass --corpus FILE|FOLDER|GLOB|builtin:NAME or --data DIR"
            )
    if args.init_embeddings:
        init = _embedding_initialiser(args.init_embeddings, args.freeze_embeddings)
    _, result = run_training(
        cfg,
        args.out,
        overwrite=args.overwrite,
        resume=args.resume,
        steps=args.steps if args.resume else None,
        init_model=init,
    )
    if result.already_complete:
        print(
            f"lmlab: {args.out} is already complete (step {result.step} of {result.step}); "
            f"nothing to do. To train further: lmlab train --out {args.out} --resume --steps N "
            f"(N > {result.step})"
        )
        return 0
    if result.interrupted:
        print(
            f"lmlab: stopped at step {result.step}; checkpoint saved. Continue with: "
            f"lmlab train --out {args.out} --resume"
        )
        return 130
    f = result.final
    bpb = f", bits/byte {f['val_bpb']:.3f}" if f.get("val_bpb") else ""
    ran = result.step - result.start
    steps = f"{ran} steps" + (f" (steps {result.start + 1}-{result.step})" if result.start else "")
    print(
        f"lmlab: done: {steps} in {result.elapsed:.0f} s; validation loss {f['val_loss']:.4f} "
        f"(perplexity {f['val_ppl']:.2f}{bpb})"
    )
    print(
        f"lmlab: run saved in {args.out} (card.md, loss.png, samples.txt); try: lmlab generate --run {args.out}"
    )
    return 0


def check_init_flags(args: argparse.Namespace) -> None:
    """Flags that make no sense together, caught before anything is read."""
    from lmlab.errors import LmlabError

    lora_flag = next((n for n in LORA_FLAGS if getattr(args, n) is not None), None)
    if lora_flag and not args.lora:
        raise LmlabError(f"--{lora_flag.replace('_', '-')} needs --lora")
    if args.lora and not args.init_from and not args.resume:
        raise LmlabError("--lora adapts a pretrained model: add --init-from MODEL")
    if args.init_from and args.init_embeddings:
        raise LmlabError("--init-embeddings and --init-from both set the weights; use one of them")
    if args.resume and (args.init_from or args.lora):
        raise LmlabError(
            "--resume continues the run as it was started (its [init] is in config.toml); "
            "drop --init-from/--lora"
        )


def _embedding_initialiser(path: str, freeze: bool):
    def init(model, tokenizer) -> None:
        from lmlab.errors import LmlabError

        try:
            from lmlab.embeddings.init import init_embedding_layer
        except ImportError:
            raise LmlabError(
                "--init-embeddings needs lmlab's embeddings module, which is not installed"
            ) from None
        layer = getattr(model, "tok_emb", None) or getattr(model, "embed", None)
        if layer is None:
            raise LmlabError(f"--init-embeddings is not supported for the {model.family} family")
        report = init_embedding_layer(layer, tokenizer, path, freeze)
        print(f"lmlab: embeddings from {path}: {report}")

    return init
