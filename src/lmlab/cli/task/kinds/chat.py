"""``lmlab task train chat``: options and config of supervised chat fine-tuning, and the
chat side of ``lmlab task eval`` / ``lmlab task predict``.

lmlab task train chat --data dailydialog --base builtin:smollm2 --lora --out runs/dd
lmlab task train chat --data samsum --lora --time-limit 1200 --out runs/samsum
lmlab task train chat --data mine.jsonl --out runs/mine
lmlab task eval --run runs/dd
lmlab chat --run runs/dd
"""

from __future__ import annotations

import argparse
import json

HELP = "chat fine-tuning on conversations (loss on assistant turns; full or LoRA)"
TRAIN_FLAGS = {  # option -> [train] key
    "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "warmup": "warmup",
    "eval_every": "eval_every", "val_conversations": "val_conversations",
    "max_conversations": "max_conversations", "max_steps": "max_steps",
    "time_limit": "time_limit", "seed": "seed", "threads": "threads",
}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``lmlab task train chat``."""
    p.description = (
        "Supervised fine-tuning of a chat model on multi-turn conversations rendered with its "
        "chat template; the loss counts the assistant's tokens only. DATA is a built-in data "
        "set (dailydialog: 2,324/150/150 dialogues; samsum: SAMSum summaries as single-turn "
        'chat) or a .jsonl file with one {"messages": [{"role": ..., "content": ...}, ...]} '
        "per line. The run is an ordinary run directory: lmlab chat/generate/serve --run RUN."
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help="dailydialog, samsum or FILE.jsonl")
    d.add_argument("--validation", help="validation .jsonl (default: 10%% of --data's)")
    d.add_argument("--test", help="test .jsonl (default: none; eval uses the validation part)")
    d.add_argument("--split-seed", type=int, help="seed of the held-out parts (default 1)")
    d.add_argument("--max-conversations", type=int,
                   help="train on a seeded sample of this many conversations (default all)")  # fmt: skip
    d.add_argument("--max-len", type=int,
                   help="tokens per conversation; longer ones are cut, counted (1024)")  # fmt: skip
    m = p.add_argument_group("model")
    m.add_argument("--base", help="chat model to tune: builtin:smollm2 (default), a .gguf, a "
                   "Hugging Face folder or an lmlab transformer run with a chat template")  # fmt: skip
    m.add_argument("--lora", action="store_true", help="train LoRA adapters, not every weight")
    m.add_argument("--lora-rank", type=int, help="adapter rank (8)")
    m.add_argument("--lora-alpha", type=float, help="adapter scale numerator (16)")
    m.add_argument("--lora-dropout", type=float, help="dropout on the adapters' input (0)")
    m.add_argument("--lora-targets", help="comma-separated linear layers (attention and MLP)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=float, help="passes over the training conversations (1)")
    t.add_argument("--batch-size", type=int, help="conversations per step (8)")
    t.add_argument("--lr", type=float, help="peak learning rate (5e-5 full, 5e-4 LoRA)")
    t.add_argument("--warmup", type=int, help="warm-up steps (20)")
    t.add_argument("--eval-every", type=int,
                   help="steps between validations (4 an epoch; 6 in all with --time-limit)")  # fmt: skip
    t.add_argument("--val-conversations", type=int,
                   help="validation conversations measured at each validation (all)")  # fmt: skip
    t.add_argument("--max-steps", type=int, help="stop after this many steps")
    t.add_argument("--time-limit", type=float, help="stop training after this many seconds")
    t.add_argument("--seed", type=int, help="shuffling seed (1)")
    t.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    t.add_argument("--no-bf16", action="store_true", help="train in float32, not bf16 autocast")
    p.add_argument("--config", help="TOML file with [task] [init] [train] sections")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set train.weight_decay=0.01")  # fmt: skip
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")


def build_config(args: argparse.Namespace) -> dict:
    from lmlab.config import apply_overrides, load_toml
    from lmlab.errors import LmlabError
    from lmlab.tasks.chat.data import data_spec

    cfg = load_toml(args.config) if args.config else {}
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    task = cfg.setdefault("task", {})
    task["kind"] = "chat"
    task["data"] = data_spec(args.data, args.validation, args.test)
    if args.split_seed is not None:
        task["split_seed"] = args.split_seed
    if args.max_len is not None:
        if args.max_len < 8:
            raise LmlabError(f"--max-len must be at least 8, got {args.max_len}")
        task["max_len"] = args.max_len
    init = cfg.setdefault("init", {})
    init["source"] = args.base or init.get("source", "builtin:smollm2")
    lora_opts = {"rank": args.lora_rank, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                 "targets": args.lora_targets.split(",") if args.lora_targets else None}  # fmt: skip
    given = {k: v for k, v in lora_opts.items() if v is not None}
    if args.lora or given:
        if not args.lora:
            raise LmlabError("--lora-rank/--lora-alpha/--lora-dropout/--lora-targets need --lora")
        init["lora"] = {**dict(init.get("lora") or {}), **given}
    train = cfg.setdefault("train", {})
    for flag, key in TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            train[key] = getattr(args, flag)
    if args.no_bf16:
        train["bf16"] = False
    return apply_overrides(cfg, args.set)


def report(args: argparse.Namespace, figures: dict) -> None:
    """What ``task train chat`` prints once the run is written."""
    v = figures["validation"]
    print(f"validation response perplexity (as in training): base {v['base_ppl']:.3f}, tuned {v['ppl']:.3f} "
          f"({100 * (v['ppl'] / v['base_ppl'] - 1):+.1f}%, {v['tokens']:,} assistant tokens)")  # fmt: skip
    print(f"run: {args.out}  (lmlab chat --run {args.out}; lmlab task eval --run {args.out})")


# --- lmlab task eval ----------------------------------------------------------------------


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("chat runs (--data: a conversations .jsonl)")

    def add(flag: str, **kw) -> None:  # --limit may be another kind's already; share it
        if flag not in p._option_string_actions:
            g.add_argument(flag, **kw)

    add("--limit", type=int, help="a seeded sample of this many held-out examples (all)")
    add("--max-new-tokens", type=int, default=64,
        help="chat runs: longest generated reply (64 tokens)")  # fmt: skip
    add("--no-base", action="store_true",
        help="chat runs: skip the base model (its perplexity and replies)")  # fmt: skip
    add("--no-generate", action="store_true",
        help="chat runs: perplexity only (no replies, distinct-n or ROUGE)")  # fmt: skip
    add("--replies", metavar="FILE",
        help="chat runs: write the prompts, references and replies as JSON")  # fmt: skip
    add("--threads", type=int, help="CPU threads (default: all cores)")


def evaluate(args: argparse.Namespace, task_run) -> int:
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    from lmlab.config import atomic_write_text
    from lmlab.errors import LmlabError
    from lmlab.tasks.chat.data import read_jsonl
    from lmlab.tasks.chat.evaluate import evaluate_chat

    if args.text_column or args.label_column or args.format or args.confusion:
        raise LmlabError("--text-column/--label-column/--format/--confusion are for "
                         "classification runs; a chat run reads a conversations .jsonl")  # fmt: skip
    if args.threads:
        torch.set_num_threads(args.threads)
    summaries = False
    if args.data:
        if args.split:
            raise LmlabError("--split chooses among the run's own splits; drop it with --data")
        convs, where = read_jsonl(args.data), args.data
    else:
        data = task_run.task_data()
        split = args.split or ("test" if data.test else "validation")
        convs, where = data.split(split), f"{data.name} {split}"
        summaries = data.summaries and split == "test"
    if args.limit is not None:
        if args.limit < 1:
            raise LmlabError(f"--limit must be at least 1, got {args.limit}")
        if args.limit < len(convs):
            keep = np.sort(np.random.default_rng(args.seed).permutation(len(convs))[: args.limit])
            where += f" (seeded sample of {args.limit:,} of {len(convs):,}, seed {args.seed})"
            convs = [convs[i] for i in keep]
    rep = evaluate_chat(task_run, convs, where, summaries=summaries, base=not args.no_base,
                        generate=not args.no_generate, seed=args.seed,
                        max_new_tokens=args.max_new_tokens,
                        progress=sys.stderr.isatty())  # fmt: skip
    if args.replies:
        atomic_write_text(Path(args.replies),
                          json.dumps(rep.examples, ensure_ascii=False, indent=1))  # fmt: skip
    if args.json:
        print(json.dumps(rep.to_dict(), ensure_ascii=False))
    else:
        print(f"{Path(args.run).name} on {where}:")
        print(rep.format())
    return 0


# --- lmlab task predict -------------------------------------------------------------------


def predict(args: argparse.Namespace, task_run) -> int:
    from lmlab.cli.task.predict import _read_texts
    from lmlab.errors import LmlabError

    if args.explain:
        raise LmlabError("--explain is for classification runs")
    for text in _read_texts(args):
        if not text.strip():
            continue
        reply = task_run.reply([{"role": "user", "content": text}])
        print(json.dumps({"text": text, "reply": reply}, ensure_ascii=False) if args.json
              else reply)  # fmt: skip
    return 0
