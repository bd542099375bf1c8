"""``lmlab lab report``: plots, scaling fit and emergence/mirage verdicts as an HTML page."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="HTML report of a sweep: plots, power-law fit, emergence and mirage verdicts",
        description="Read a results database written by `lmlab lab sweep` and write an HTML "
        "page (figures embedded, also saved as PNG beside it) and a Markdown summary.",
    )
    p.add_argument("--db", required=True, help="results database (SQLite) of `lmlab lab sweep`")
    p.add_argument(
        "--out", default=None, help="output folder (default: <db name>_report/ beside the database)"
    )
    p.add_argument(
        "--task", action="append", default=None, help="only this task (repeatable; default all)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lmlab.lab.report import write_report

    db = Path(args.db)
    out = Path(args.out) if args.out else db.with_name(db.stem + "_report")
    page = write_report(db, out, args.task)
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"report: {page}")
    return 0
