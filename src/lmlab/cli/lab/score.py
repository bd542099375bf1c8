"""``lmlab lab score``: any model (pretrained or trained here) on the lab's tasks, as text."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score pretrained models and runs on synthetic tasks as text, few-shot",
        description="Render each test problem of TASK as a line of text after --shots solved "
        "problems, and score each --run's continuation with the lab's metrics: exact match and "
        "edit distance of its greedy answer (in the task's symbols), the log-likelihood and "
        "per-token accuracy of the right answer, and for multiple-choice tasks the choice "
        "accuracy and Brier score. Letters are written one per word so that every letter is a "
        "token of its own; digits as the task writes them. --scratch SIZE also trains a "
        "model of that size from scratch on the task (the lab's trainer) and scores it on the "
        "same test problems, side by side.",
        epilog="examples:\n"
        "  lmlab lab score fewshot recall --run builtin:smollm2\n"
        "  lmlab lab score add:digits=2 --run builtin:smollm2 --run runs/demo --scratch 64x2\n"
        "  lmlab lab score copy --run builtin:smollm2 --shots 0 --describe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("tasks", nargs="+", metavar="TASK", help="task spec NAME[:KEY=VALUE,...]")
    p.add_argument(
        "--run",
        "--model",
        dest="runs",
        action="append",
        default=[],
        help="run directory, .gguf file, Hugging Face folder or builtin:smollm2 (repeatable)",
    )
    p.add_argument(
        "--scratch",
        action="append",
        default=[],
        metavar="SIZE",
        help="also train a WIDTHxLAYERS model from scratch on each task (repeatable)",
    )
    p.add_argument("-n", "--problems", type=int, default=100, help="test problems (default 100)")
    p.add_argument("--shots", type=int, default=3, help="solved problems before each (default 3)")
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "plain", "spaced"],
        help="spaced: one symbol per word; plain: as the task writes them; auto (default): "
        "spaced when the task has letters",
    )
    p.add_argument(
        "--describe",
        action="store_true",
        help="start the prompt with the task's description and answer format",
    )
    p.add_argument("--data", type=int, default=10_000, help="--scratch training problems")
    p.add_argument("--steps", type=int, default=1000, help="--scratch training steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads for --scratch")
    p.add_argument("--seed", type=int, default=0, help="split and demonstrations (default 0)")
    p.add_argument("--out", help="also write score.json and score.md into this folder")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from lmlab.config import atomic_write_text
    from lmlab.errors import LmlabError
    from lmlab.lab.score import score_table, score_text, scratch_scores
    from lmlab.lab.tasks import task_from_spec
    from lmlab.lab.trainer import parse_size
    from lmlab.run import load_run

    if not args.runs and not args.scratch:
        raise LmlabError("give at least one --run (or --scratch SIZE) to score")
    if args.problems < 1 or args.shots < 0:
        raise LmlabError("--problems must be at least 1 and --shots at least 0")
    tasks = [task_from_spec(t) for t in args.tasks]  # bad specs fail before any work
    for size in args.scratch:
        parse_size(size)
    runs = [(spec, load_run(spec, args.device)) for spec in args.runs]
    results = []
    md = ["# Task scores", ""]
    for task in tasks:
        scores = [
            score_text(
                r,
                task,
                args.problems,
                args.shots,
                args.seed,
                args.format,
                args.describe,
                name=spec,
                progress=not args.json,
            )  # fmt: skip
            for spec, r in runs
        ]
        scores += [
            scratch_scores(
                task,
                size,
                args.problems,
                args.seed,
                args.data,
                args.steps,
                args.threads,
                progress=not args.json,
            )  # fmt: skip
            for size in args.scratch
        ]
        results += scores
        title = (
            f"{task.spec}: {task.description}; {args.problems} test problems, "
            f"chance {task.chance:.3g} exact match"
        )
        table = score_table(scores)
        notes = [f"note ({s.model}): {n}" for s in scores for n in s.notes]
        md += [f"## {title}", "", *table, "", *[f"- {n}" for n in notes], ""]
        if not args.json:
            print(title)
            print("\n".join(table))
            for n in notes:
                print(n)
            for s in scores:
                for ex in s.examples[:1]:
                    print(
                        f"e.g. {s.model}: {ex['prompt']!r} -> wrote {ex['written']!r} "
                        f"(right: {ex['answer']!r})"
                    )
            print()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "score.json", json.dumps([s.as_dict() for s in results], indent=1))
        atomic_write_text(out / "score.md", "\n".join(md))
        if not args.json:
            print(f"wrote {out / 'score.md'}, {out / 'score.json'}")
    if args.json:
        print(json.dumps([s.as_dict() for s in results]))
    return 0
