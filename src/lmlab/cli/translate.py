"""``lmlab translate``: translate text with a translation run (file, arguments or stdin).

lmlab translate --run runs/zh-en "我们明天见。"
lmlab translate --run runs/en-zh --file sentences.txt > out.txt
cat sentences.txt | lmlab translate --run runs/zh-en --decode greedy

The same as ``lmlab task predict`` on a translation run, under the name users look for.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate",
        help="translate text with a translation run (arguments, --file or stdin)",
        description="Translate each TEXT, each line of --file, or each line of standard "
        "input with a run trained by `lmlab task train translate`; one line out per line in.",
    )
    p.add_argument("--run", required=True, help="translation run directory")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to translate")
    p.add_argument("--file", help="one text per line ('-': standard input)")
    p.add_argument("--json", action="store_true", help="one JSON object per text")
    from lmlab.cli.task.kinds import translate

    translate.add_predict_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmlab.cli._common import one_line_warnings
    from lmlab.cli.task.kinds import translate
    from lmlab.errors import LmlabError
    from lmlab.tasks.rundir import load_task_run, task_config

    one_line_warnings()
    kind = task_config(args.run).get("task", {}).get("kind")
    if kind != "translate":
        raise LmlabError(
            f"{args.run} is a {kind or 'non-task'} run, not a translation run; train one with "
            "`lmlab task train translate`"
        )
    return translate.predict(args, load_task_run(args.run))
