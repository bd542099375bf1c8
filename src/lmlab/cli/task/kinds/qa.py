"""``lmlab task train qa``: options and config of extractive question-answering runs, and
the QA side of ``lmlab task eval`` / ``lmlab task predict``.

lmlab task train qa --data squad-xquad --base builtin:smollm2 --out runs/qa-en
lmlab task train qa --data my.json --lora --out runs/qa-mine
lmlab task eval --run runs/qa-en
lmlab task predict --run runs/qa-en --question "Who wrote it?" --context-file passage.txt
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "extractive question answering (a span head on a pretrained Transformer)"
TRAIN_FLAGS = {  # option -> [train] key
    "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "head_lr": "head_lr",
    "eval_every": "eval_every", "val_questions": "val_questions",
    "max_questions": "max_questions", "max_steps": "max_steps", "time_limit": "time_limit",
    "test_questions": "test_questions", "negatives": "negatives",
    "seed": "seed", "threads": "threads",
}  # fmt: skip
TASK_FLAGS = {"max_len": "max_len", "stride": "stride", "max_answer_tokens": "max_answer_tokens",
              "freeze_layers": "freeze_layers", "bidirectional": "bidirectional"}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``lmlab task train qa``."""
    p.description = (
        "Fine-tune a span model (start/end logits over the passage tokens) on a pretrained "
        "Transformer for extractive QA. DATA is a built-in data set (squad-xquad: SQuAD v1.1 "
        "dev minus XQuAD's paragraphs, scored on XQuAD-en; cmrc: CMRC 2018 trial, scored on "
        "its dev) or a SQuAD-format .json/.json.zip file."
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help="squad-xquad, cmrc, or a SQuAD-format file")
    d.add_argument("--validation", help="validation file (default: 10%% of --data's passages)")
    d.add_argument("--test", help="test file (default with neither: --data split 80/10/10)")
    d.add_argument("--split-seed", type=int, help="seed of the held-out splits (default 1)")
    d.add_argument("--max-questions", type=int,
                   help="train on this many questions (a seeded sample; default all)")  # fmt: skip
    m = p.add_argument_group("model")
    m.add_argument("--base", help="pretrained Transformer: builtin:smollm2 (default), a .gguf, "
                   "a Hugging Face folder or an lmlab transformer run")  # fmt: skip
    m.add_argument("--lora", action="store_true", help="train LoRA adapters, not every weight")
    m.add_argument("--lora-rank", type=int, help="adapter rank (8)")
    m.add_argument("--lora-alpha", type=float, help="adapter scale numerator (16)")
    m.add_argument("--lora-dropout", type=float, help="dropout on the adapters' input (0)")
    m.add_argument("--lora-targets", help="comma-separated linear layers (attention and MLP)")
    m.add_argument("--freeze-layers", type=int,
                   help="keep the embeddings and this many lowest blocks fixed (0)")  # fmt: skip
    m.add_argument("--bidirectional", type=int, metavar="N",
                   help="let the top N (trained) blocks attend both ways, so a start logit "
                   "reads the answer after it (0: all causal)")  # fmt: skip
    m.add_argument("--max-len", type=int, help="tokens per window, question + passage (256)")
    m.add_argument("--stride", type=int, help="tokens consecutive windows share (64)")
    m.add_argument("--max-answer-tokens", type=int, help="longest answer searched (30 tokens)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=float, help="passes over the training windows (2)")
    t.add_argument("--batch-size", type=int, help="windows per step (16)")
    t.add_argument("--lr", type=float, help="peak learning rate (5e-5 full, 5e-4 LoRA)")
    t.add_argument("--head-lr", type=float, help="the span head's peak learning rate (1e-3)")
    t.add_argument("--eval-every", type=int, help="steps between validations (4 an epoch)")
    t.add_argument("--val-questions", type=int,
                   help="validation questions scored at each validation (300; 0: all)")  # fmt: skip
    t.add_argument("--test-questions", type=int,
                   help="score a seeded sample of this many test questions at the end (all)")  # fmt: skip
    t.add_argument("--negatives", type=float,
                   help="share of the windows without the answer trained on (1.0)")  # fmt: skip
    t.add_argument("--max-steps", type=int, help="stop after this many steps")
    t.add_argument("--time-limit", type=float, help="stop training after this many seconds")
    t.add_argument("--seed", type=int, help="shuffling and head initialisation seed (1)")
    t.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    t.add_argument("--no-bf16", action="store_true", help="train in float32, not bf16 autocast")
    p.add_argument("--config", help="TOML file with [task] [init] [train] sections")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set train.warmup=50")  # fmt: skip
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")


def build_config(args: argparse.Namespace) -> dict:
    from lmlab.config import apply_overrides, load_toml
    from lmlab.errors import LmlabError
    from lmlab.tasks.qa.datasets import data_spec

    cfg = load_toml(args.config) if args.config else {}
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    task = cfg.setdefault("task", {})
    task["kind"] = "qa"
    task["data"] = data_spec(args.data, args.validation, args.test)
    if args.split_seed is not None:
        task["split_seed"] = args.split_seed
    for flag, key in TASK_FLAGS.items():
        if getattr(args, flag) is not None:
            task[key] = getattr(args, flag)
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


def report(args: argparse.Namespace, reports: dict) -> None:
    """What ``task train qa`` prints once the run is written."""
    for split, r in reports.items():
        print(f"{split}: {r.format()}")
    print(f"run: {args.out}  (card.md, results.json, learning_curve.png)")


# --- lmlab task eval ----------------------------------------------------------------------


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("question answering runs (--data: a SQuAD-format .json/.json.zip)")
    g.add_argument("--qa-limit", type=int,
                   help="score a seeded sample of this many questions (default all)")  # fmt: skip
    g.add_argument("--qa-predictions", metavar="FILE",
                   help="write {question id: predicted answer} as JSON (SQuAD's format)")  # fmt: skip


def evaluate(args: argparse.Namespace, task_run) -> int:
    from pathlib import Path

    import numpy as np

    from lmlab.config import atomic_write_text
    from lmlab.errors import LmlabError
    from lmlab.tasks.qa.data import read_squad

    if args.text_column or args.label_column or args.format or args.confusion:
        raise LmlabError("--text-column/--label-column/--format/--confusion are for "
                         "classification runs; a QA run reads SQuAD-format --data")  # fmt: skip
    if args.data:
        if args.split:
            raise LmlabError("--split chooses among the run's own splits; drop it with --data")
        examples, where = read_squad(args.data, for_scoring=True), args.data
    else:
        data = task_run.task_data()
        split = args.split or ("test" if data.test else "validation")
        examples, where = data.split(split), f"{data.name} {split}"
    if args.qa_limit is not None:
        if args.qa_limit < 1:
            raise LmlabError(f"--qa-limit must be at least 1, got {args.qa_limit}")
        if args.qa_limit < len(examples):
            keep = np.sort(
                np.random.default_rng(args.seed).permutation(len(examples))[: args.qa_limit]
            )
            examples = [examples[i] for i in keep]
            where += f" (seeded sample of {len(examples):,})"
    report, preds = task_run.evaluate(examples, args.bootstrap, args.seed,
                                      progress=sys.stderr.isatty())  # fmt: skip
    if args.qa_predictions:
        out = {e.id: p for e, p in zip(examples, preds, strict=True)}
        atomic_write_text(Path(args.qa_predictions), json.dumps(out, ensure_ascii=False, indent=1))
    if args.json:
        print(json.dumps({"data": where, **report.to_dict()}, ensure_ascii=False))
    else:
        print(f"{Path(args.run).name} on {where}:")
        print(report.format())
    return 0


# --- lmlab task predict -------------------------------------------------------------------


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("question answering runs")
    g.add_argument("--question", help="the question (else the TEXT arguments)")
    g.add_argument("--context", help="the passage to answer from")
    g.add_argument("--context-file", help="read the passage from this file ('-': standard input)")


def _read_context(args: argparse.Namespace) -> str:
    from lmlab.errors import LmlabError

    if args.context is not None and args.context_file:
        raise LmlabError("give --context or --context-file, not both")
    if args.context is not None:
        return args.context
    if args.context_file == "-" or (args.context_file is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    if args.context_file:
        try:
            with open(args.context_file, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise LmlabError(f"cannot read {args.context_file}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise LmlabError(f"{args.context_file} is not UTF-8 text; convert it") from None
    raise LmlabError("a QA run needs the passage: --context TEXT, --context-file F, or stdin")


def predict(args: argparse.Namespace, task_run) -> int:
    from lmlab.errors import LmlabError

    if args.file or args.explain:
        raise LmlabError("--file/--explain are for classification runs; a QA run takes "
                         "--question and --context/--context-file")  # fmt: skip
    question = args.question if args.question is not None else " ".join(args.texts)
    if not question.strip():
        raise LmlabError("no question: give --question Q (or the question as TEXT)")
    context = _read_context(args)
    answers = task_run.answer(question, context, top=max(1, args.top))
    if args.json:
        print(json.dumps({"question": question, "answers": answers}, ensure_ascii=False))
        return 0
    for i, a in enumerate(answers):
        label = "answer" if i == 0 else f"  #{i + 1}"
        print(f"{label}: {a['text']}  (score {a['score']:.4f}, characters {a['start']}-{a['end']})")
    return 0
