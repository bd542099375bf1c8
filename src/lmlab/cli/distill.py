"""``lmlab distill``: train a small Transformer on a teacher's soft targets (a new run)."""

from __future__ import annotations

import argparse

# flag -> [train] key, for the training settings passed through to the trainer
TRAIN_FLAGS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "context": "context",
    "lr": "lr",
    "time_limit": "time_limit",
    "threads": "threads",
    "precision": "precision",
    "eval_every": "eval_every",
    "seed": "seed",
    "device": "device",
}
# flags a resumed run takes from its config.toml instead
NEW_RUN_FLAGS = (
    "teacher", "corpus", "student_depth", "student_width", "student_block", "alpha",
    "temperature", "top_k", "init_embeddings", "init_from", "cache", "val_fraction",
    "batch_size", "context", "lr", "time_limit", "threads", "precision", "eval_every", "seed",
    "device",
)  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill",
        help="distil a teacher model into a small Transformer student",
        description="Train a small lmlab Transformer (the student) on a teacher's soft targets: "
        "loss = alpha x T^2 x KL(teacher_T || student_T) + (1 - alpha) x cross-entropy on the "
        "next tokens. The teacher (a run directory, .gguf file, Hugging Face folder or "
        "builtin:smollm2) runs once over the training text; its top-k log-probabilities and the "
        "remaining mass are cached on disk and reused by later students and resumed runs. The "
        "student shares the teacher's tokenizer. --alpha 0 trains the same student on the same "
        "batches with plain cross-entropy (the teacher is not run): the from-scratch baseline. "
        "The result is an ordinary run directory for generate, eval and serve.",
        epilog="example: lmlab distill --teacher builtin:smollm2 --student-depth 4 "
        "--student-width 192 --corpus book.txt --steps 600 --out runs/student",
    )
    p.add_argument("--teacher", help="teacher: run directory, .gguf, HF folder or builtin:smollm2")
    p.add_argument("--out", required=True, help="run directory of the student, e.g. runs/student")
    p.add_argument(
        "--corpus", action="append", default=None,
        help="text file, folder, glob or builtin:NAME (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--val-fraction", type=float, default=0.1,
        help="the last share of the text, held out for validation (0.1)",
    )  # fmt: skip
    s = p.add_argument_group("student")
    s.add_argument("--student-depth", type=int, help="layers (the width is 64 x depth unless set)")
    s.add_argument("--student-width", type=int, help="model width (default 64 x depth)")
    s.add_argument(
        "--student-block", choices=["gpt2", "llama"], default="gpt2", help="block style (gpt2)"
    )
    s.add_argument(
        "--init-embeddings", choices=["random", "project"], default="random",
        help="project: the teacher's token embeddings reduced to the student's width by PCA",
    )  # fmt: skip
    s.add_argument("--init-from", metavar="RUN", help="start the student from this run's weights")
    d = p.add_argument_group("distillation")
    d.add_argument(
        "--alpha", type=float, default=0.5,
        help="weight of the KL term, 0..1 (0.5); 0 = plain cross-entropy, no teacher",
    )  # fmt: skip
    d.add_argument("--temperature", type=float, default=1.0, help="softmax temperature T (1)")
    d.add_argument(
        "--top-k", type=int, default=64, help="teacher log-probabilities kept per position (64)"
    )
    d.add_argument(
        "--cache", metavar="DIR",
        help="folder for the teacher's cached targets, shared between runs "
        "(default: RUN/teacher_targets)",
    )  # fmt: skip
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, help="optimizer steps (1000); with --resume, the new total")
    t.add_argument("--batch-size", type=int, help="windows per step (32)")
    t.add_argument("--context", type=int, help="window length in tokens (128)")
    t.add_argument("--lr", type=float, help="peak learning rate (1e-3)")
    t.add_argument("--eval-every", type=int, help="validate and checkpoint every N steps (250)")
    t.add_argument(
        "--precision", choices=["fp32", "bf16", "auto"],
        help="the student's arithmetic: auto (default) = bf16 autocast where native",
    )  # fmt: skip
    t.add_argument("--time-limit", type=float, help="stop the student after this many seconds")
    t.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    t.add_argument("--seed", type=int, help="random seed (1337)")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--resume", action="store_true", help="continue the distilled run in --out")
    p.set_defaults(func=run)


def _train_options(args: argparse.Namespace) -> dict:
    opts = {key: getattr(args, flag) for flag, key in TRAIN_FLAGS.items()
            if getattr(args, flag) is not None}  # fmt: skip
    opts.setdefault("precision", "auto")
    if "eval_every" in opts:
        opts["checkpoint_every"] = opts["eval_every"]
    return opts


def _check_flags(args: argparse.Namespace, p_defaults: dict) -> None:
    from lmlab.errors import LmlabError

    if args.resume:
        given = [f for f in NEW_RUN_FLAGS if getattr(args, f) != p_defaults.get(f)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise LmlabError(
                f"--resume continues the run as it was started (its settings are in "
                f"config.toml); drop {flag}"
            )
        return
    if not args.teacher:
        raise LmlabError("no teacher: pass --teacher RUN|FILE.gguf|HF_FOLDER|builtin:smollm2")
    if not args.corpus:
        raise LmlabError("no training text: pass --corpus FILE|FOLDER|GLOB|builtin:NAME")
    if args.student_depth is None and not args.init_from:
        raise LmlabError("give the student's size: --student-depth N (or --init-from RUN)")


DEFAULTS = {"val_fraction": 0.1, "student_block": "gpt2", "init_embeddings": "random",
            "alpha": 0.5, "temperature": 1.0, "top_k": 64}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from lmlab.cli._common import one_line_warnings
    from lmlab.distill.runner import DistillSettings, Student, run_distill

    one_line_warnings()
    _check_flags(args, DEFAULTS)
    settings = None
    if not args.resume:
        settings = DistillSettings(
            teacher=args.teacher,
            alpha=args.alpha,
            temperature=args.temperature,
            top_k=args.top_k,
            cache=args.cache,
            init_embeddings=args.init_embeddings,
            init_from=args.init_from,
        )
    _, result = run_distill(
        settings,
        args.out,
        corpus=args.corpus,
        student=Student(args.student_depth, args.student_width, args.student_block),
        train_options=_train_options(args),
        val_fraction=args.val_fraction,
        overwrite=args.overwrite,
        resume=args.resume,
        steps=args.steps if args.resume else None,
    )
    if result.already_complete:
        print(f"lmlab: {args.out} is already complete (step {result.step}); nothing to do. "
              f"To train further: lmlab distill --out {args.out} --resume --steps N")  # fmt: skip
        return 0
    if result.interrupted:
        print(f"lmlab: stopped at step {result.step}; checkpoint saved. Continue with: "
              f"lmlab distill --out {args.out} --resume")  # fmt: skip
        return 130
    f = result.final
    bpb = f", bits/byte {f['val_bpb']:.3f}" if f.get("val_bpb") else ""
    print(f"lmlab: done: {result.step - result.start} steps in {result.elapsed:.0f} s; validation "
          f"loss {f['val_loss']:.4f} (perplexity {f['val_ppl']:.2f}{bpb})")  # fmt: skip
    print(f"lmlab: run saved in {args.out} (card.md, loss.png, metrics.jsonl); try: "
          f"lmlab generate --run {args.out}")  # fmt: skip
    return 0
