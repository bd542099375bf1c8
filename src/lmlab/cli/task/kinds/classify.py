"""``lmlab task train classify``: options and config of text classification runs.

lmlab task train classify --data sst2 --model textcnn --out runs/sst2-cnn
lmlab task train classify --data reviews.csv --text-column review --label-column stars \
    --model bilstm --out runs/reviews
lmlab task train classify --data sst2 --model lm --base builtin:smollm2 --lora --out runs/sst2-lm
lmlab task train classify --data sst2 --model prompt --base builtin:smollm2 --shots 4 --out runs/sst2-4shot
"""

from __future__ import annotations

import argparse

HELP = "text classification and sentiment (bow, textcnn, bilstm, bigru, lm, prompt)"
TRAIN_FLAGS = {  # option -> [train] key
    "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "max_len": "max_len",
    "eval_every": "eval_every", "patience": "patience", "max_steps": "max_steps",
    "time_limit": "time_limit", "seed": "seed", "threads": "threads", "select": "select",
    "max_train": "max_train", "max_validation": "max_validation", "min_words": "min_words",
}  # fmt: skip
MODEL_FLAGS = {  # option -> [model] key (lm, prompt)
    "pooling": "pooling", "head_init": "head_init", "shots": "shots", "shot_seed": "shot_seed",
    "template": "template", "instruction": "instruction",
}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``lmlab task train classify``."""
    from lmlab.tasks import CLASSIFIERS
    from lmlab.tasks.datasets import BUILTINS

    p.description = (
        "Train a text classifier on labelled data. DATA is a built-in data set "
        f"({', '.join(BUILTINS)}; see lmlab task data) or a TSV/CSV/JSONL file with a text "
        "and a label column."
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help="built-in name or training file")
    d.add_argument("--validation", help="validation file (default: 10%% of --data, stratified)")
    d.add_argument("--test", help="test file (default with neither: --data split 80/10/10)")
    d.add_argument("--text-column", help="text column: header name or 0-based index (auto)")
    d.add_argument("--label-column", help="label column: header name or 0-based index (auto)")
    d.add_argument("--format", choices=["tsv", "csv", "jsonl"], help="file format (from the name)")
    d.add_argument("--split-seed", type=int, help="seed of the held-out splits (default 1)")
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=list(CLASSIFIERS),
                   help="bow (averaged embeddings + MLP), textcnn (Kim 2014, default), "
                   "bilstm / bigru (recurrent encoder + pooling), lm (a pretrained Transformer "
                   "+ head, fine-tuned; needs --base), prompt (zero/few-shot prompting of "
                   "--base, scored by the label words' likelihood; nothing trained)")  # fmt: skip
    m.add_argument("--tokenizer", choices=["word", "char", "bpe"],
                   help="word (regex; jieba for Chinese; default), char, or bpe")  # fmt: skip
    m.add_argument("--vocab-size", type=int, help="word vocabulary cap (50000) / BPE size (8000)")
    m.add_argument("--keep-case", action="store_true", help="word tokenizer: do not lower-case")
    m.add_argument("--embed-dim", type=int, help="word vector size (300; from --vectors)")
    m.add_argument("--vectors", help="start the word (or, with --tokenizer char, character) "
                   "vectors from this file: lmlab embed train's output, any of its formats")  # fmt: skip
    m.add_argument("--freeze-embeddings", action="store_true",
                   help="keep the --vectors fixed (Kim's 'static'; default: fine-tuned)")  # fmt: skip
    lm = p.add_argument_group("pretrained Transformer (--model lm / prompt)")
    lm.add_argument("--base", help="builtin:smollm2, a .gguf file, a Hugging Face folder or an "
                    "lmlab Transformer run")  # fmt: skip
    lm.add_argument("--lora", action="store_true", help="lm: train LoRA adapters and the head "
                    "(default: fine-tune every weight)")  # fmt: skip
    lm.add_argument("--lora-rank", type=int, help="LoRA rank (8)")
    lm.add_argument("--lora-alpha", type=float, help="LoRA alpha (16)")
    lm.add_argument("--pooling", choices=["last", "mean"],
                    help="lm: the last real token's hidden state (default) or the mean")  # fmt: skip
    lm.add_argument("--head-init", choices=["label_words", "random"],
                    help="lm: start the head from the label words' output rows (default) or "
                    "at random")  # fmt: skip
    lm.add_argument("--shots", type=int, help="prompt: demonstrations from the training split (0)")
    lm.add_argument("--shot-seed", type=int, help="prompt: seed of the demonstrations (1)")
    lm.add_argument("--label-words", help="one word per label, comma-separated, in label order "
                    "(default: the data set's, else the labels)")  # fmt: skip
    lm.add_argument("--template", help="prompt around each text, with {text} (default: the data "
                    "set's, e.g. 'Review: {text}\\nSentiment:')")  # fmt: skip
    lm.add_argument("--instruction", help="text before the prompt (prompt: before the "
                    "demonstrations; default: the data set's)")  # fmt: skip
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, help="passes over the training data (10)")
    t.add_argument("--batch-size", type=int, help="texts per step (50)")
    t.add_argument("--lr", type=float, help="peak learning rate (1e-3)")
    t.add_argument("--max-len", type=int, help="tokens kept per text (256)")
    t.add_argument("--eval-every", type=int, help="steps between validations (once an epoch)")
    t.add_argument("--patience", type=int, help="validations without improvement before "
                   "stopping (3; 0: never)")  # fmt: skip
    t.add_argument("--select", choices=["accuracy", "macro_f1"], help="model selection metric")
    t.add_argument("--max-steps", type=int, help="stop after this many steps")
    t.add_argument("--time-limit", type=float, help="stop after this many seconds")
    t.add_argument("--seed", type=int, help="initialisation and shuffling seed (1)")
    t.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    t.add_argument("--max-train", type=int, help="train on a seeded, stratified sample of N texts")
    t.add_argument("--min-words", type=int, help="train and select only on texts of N+ words "
                   "(e.g. SST-2's whole sentences rather than its short phrases)")  # fmt: skip
    t.add_argument("--max-validation", type=int,
                   help="select on a seeded, stratified sample of N validation texts")  # fmt: skip
    p.add_argument("--config", help="TOML file with [task] [tokenizer] [model] [train] sections")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set model.filters=200 "
                   "--set train.weight_decay=0.01")  # fmt: skip
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")


def build_config(args: argparse.Namespace) -> dict:
    from lmlab.config import apply_overrides, load_toml
    from lmlab.tasks.datasets import data_spec

    cfg = load_toml(args.config) if args.config else {}
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    task = cfg.setdefault("task", {})
    task["kind"] = args.kind
    task["data"] = data_spec(args.data, args.validation, args.test, args.text_column,
                             args.label_column, args.format)  # fmt: skip
    if args.split_seed is not None:
        task["split_seed"] = args.split_seed
    if args.vectors:
        task["embeddings"] = {"path": args.vectors, "freeze": args.freeze_embeddings}
    elif args.freeze_embeddings:
        from lmlab.errors import LmlabError

        raise LmlabError("--freeze-embeddings needs --vectors (random vectors would stay random)")
    tok = cfg.setdefault("tokenizer", {})
    tok["kind"] = args.tokenizer or tok.get("kind", "word")
    if args.vocab_size is not None:
        tok["vocab_size" if tok["kind"] == "bpe" else "max_vocab"] = args.vocab_size
    if args.keep_case:
        tok["lowercase"] = False
    model = cfg.setdefault("model", {})
    model["family"] = args.model or model.get("family", "textcnn")
    if args.embed_dim is not None:
        model["embed_dim"] = args.embed_dim
    _pretrained_options(args, task, model)
    train = cfg.setdefault("train", {})
    for flag, key in TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            train[key] = getattr(args, flag)
    return apply_overrides(cfg, args.set)


def _pretrained_options(args: argparse.Namespace, task: dict, model: dict) -> None:
    from lmlab.errors import LmlabError

    family = model["family"]
    given = [f for f in ("base", "lora", "lora_rank", "lora_alpha", "label_words", *MODEL_FLAGS)
             if getattr(args, f) not in (None, False)]  # fmt: skip
    if family not in ("lm", "prompt"):
        if given:
            raise LmlabError(f"--{given[0].replace('_', '-')} is for --model lm or prompt")
        return
    if args.base:
        task["base"] = args.base
    if not task.get("base"):
        raise LmlabError(
            f"--model {family} needs --base (builtin:smollm2, a .gguf, an HF folder or a run)"
        )
    only = {"lm": ("lora", "lora_rank", "lora_alpha", "pooling", "head_init"),
            "prompt": ("shots", "shot_seed")}  # fmt: skip
    for other, flags in only.items():
        wrong = [f for f in flags if other != family and f in given]
        if wrong:
            raise LmlabError(f"--{wrong[0].replace('_', '-')} is for --model {other}")
    for flag, key in MODEL_FLAGS.items():
        if getattr(args, flag) is not None:
            model[key] = (
                getattr(args, flag).replace("\\n", "\n")
                if isinstance(getattr(args, flag), str)
                else getattr(args, flag)
            )
    if args.label_words:
        model["label_words"] = [w.strip() for w in args.label_words.split(",")]
    if args.lora or args.lora_rank or args.lora_alpha:
        lora = dict(model.get("lora") or {})
        if args.lora_rank is not None:
            lora["rank"] = args.lora_rank
        if args.lora_alpha is not None:
            lora["alpha"] = args.lora_alpha
        lora.setdefault("rank", 8)
        lora.setdefault("alpha", 16.0)
        model["lora"] = lora


def report(args: argparse.Namespace, reports: dict) -> None:
    """What ``task train classify`` prints once the run is written."""
    for split, r in reports.items():
        print(f"{split}: {r.format()}")
    print(f"run: {args.out}  (card.md, results.json, confusion.png, learning_curve.png)")
