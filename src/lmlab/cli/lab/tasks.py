"""``lmlab lab tasks``: list the synthetic tasks, or show samples of one."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tasks",
        help="list the synthetic tasks, or show samples of one",
        description="Without TASK: every task with its parameters. With TASK (e.g. "
        "add:digits=4,reversed=true): its answer format, vocabulary and sample problems "
        "from the training and test halves of its split.",
    )
    p.add_argument("task", nargs="?", help="task spec NAME[:KEY=VALUE,...]")
    p.add_argument("-n", "--samples", type=int, default=5, help="samples per half (default 5)")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from lmlab.lab.tasks import TASKS, make_split, task_from_spec

    if not args.task:
        for name, cls in TASKS.items():
            params = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(cls))
            print(f"{name:10s} {cls.description}")
            print(f"{'':10s} parameters: {params}")
        print("\nShow samples: lmlab lab tasks add:digits=4,reversed=true")
        return 0
    task = task_from_spec(args.task)
    n = max(1, args.samples)
    split = make_split(task, n, n, args.seed)
    vocab = task.vocab()
    print(f"task:    {task.spec}  ({task.description})")
    print(f"answer:  {task.answer_format}")
    print(f"chance:  {task.chance:.3g} exact match")
    shown = vocab.symbols[3:]
    print(
        f"vocab:   {len(vocab)} symbols (<pad> <bos> <eos> + {' '.join(shown[:40])}"
        f"{' ...' if len(shown) > 40 else ''})"
    )
    for half, examples in (("train", split.train), ("test", split.test)):
        print(f"\n{half}:")
        for e in examples:
            extra = (
                f"   choices: {' / '.join(vocab.show(c) for c in e.choices)}" if e.choices else ""
            )
            print(f"  {vocab.show(e.prompt)} -> {vocab.show(e.answer)}{extra}")
    return 0
