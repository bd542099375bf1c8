"""The README is the short front door: its links resolve, its results table is current."""

from __future__ import annotations

import re
import subprocess
import sys

from tutorials import ROOT

README = ROOT / "README.md"


def test_readme_is_short_and_its_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200, "the README is the front door; the manual is docs/"
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets
    broken = [
        t
        for t in targets
        if not t.startswith(("http://", "https://", "#")) and not (ROOT / t.split("#")[0]).exists()
    ]
    assert not broken, f"README links to files that do not exist: {broken}"


def test_readme_headline_table_matches_results_md() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "docs" / "results.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "| what | lmlab |" in README.read_text(encoding="utf-8")


def test_cli_reference_covers_every_command() -> None:
    sys.path.insert(0, str(ROOT / "tools" / "docs"))
    import cli_reference

    from lmlab.cli import build_parser

    page = cli_reference.render()
    paths = [" ".join(p) for p, _, _ in cli_reference.walk(build_parser())]
    assert {"train", "generate", "eval", "serve", "lab sweep", "embed train"} <= set(paths)
    for p in paths:
        assert f"lmlab {p}\n" in page
    assert "`--max-new-tokens`" in page and "`--steps`" in page
