"""benchmarks/RESULTS.md is the one home of every results table; this module reads it.

RESULTS.md is made of sections fenced by ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``
(each benchmark script rewrites its own). The docs build turns the whole file into the
Benchmarks page, and a page can pull in one section with ``<!-- results: NAME -->``. The
``headline`` section is the table the README shows; copy it there with

    python tools/docs/results.py --write     # or --check: exit 1 if README.md is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
README = ROOT / "README.md"
_SECTION = re.compile(r"<!-- ([\w-]+):start -->\n(.*?)<!-- \1:end -->", re.S)


def sections(text: str | None = None) -> dict[str, str]:
    """Every fenced section of RESULTS.md: name -> its Markdown (without the fences)."""
    if text is None:
        text = RESULTS.read_text(encoding="utf-8")
    return {m.group(1): m.group(2).strip() + "\n" for m in _SECTION.finditer(text)}


def section(name: str, demote: int = 0) -> str:
    """One section of RESULTS.md, its headings moved ``demote`` levels down."""
    found = sections()
    if name not in found:
        raise KeyError(f"benchmarks/RESULTS.md has no section {name!r} (have: {sorted(found)})")
    body = found[name]
    if demote:
        body = re.sub(
            r"^(#{1,5}) ", lambda m: "#" * (len(m.group(1)) + demote) + " ", body, flags=re.M
        )
    return body


def tables(name: str, which: list[int] | None = None) -> str:
    """The tables of one section (all, or the ``which``-th, counted from 1), nothing else."""
    found: list[list[str]] = []
    prev = ""
    for line in section(name).splitlines():
        if line.startswith("|"):
            if not prev.startswith("|"):
                found.append([])
            found[-1].append(line)
        prev = line
    if which:
        if max(which) > len(found):
            raise KeyError(f"benchmarks/RESULTS.md section {name!r} has {len(found)} tables")
        found = [found[i - 1] for i in which]
    return "\n\n".join("\n".join(t) for t in found) + "\n"


def headline_table() -> str:
    """The README's headline results: the table of the ``headline`` section."""
    return tables("headline")


def readme_with_headline(readme: str) -> str:
    """README text with its ``<!-- headline:start/end -->`` part replaced by the table."""
    fence = re.compile(r"(<!-- headline:start -->\n).*?(<!-- headline:end -->)", re.S)
    if not fence.search(readme):
        raise ValueError("README.md has no <!-- headline:start --> ... <!-- headline:end --> part")
    return fence.sub(lambda m: m.group(1) + headline_table() + m.group(2), readme)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true", help="update README.md's headline table")
    g.add_argument("--check", action="store_true", help="exit 1 if README.md's table is stale")
    args = p.parse_args(argv)
    old = README.read_text(encoding="utf-8")
    new = readme_with_headline(old)
    if args.check:
        if new != old:
            print(
                "README.md's headline table differs from benchmarks/RESULTS.md's headline "
                "section: run python tools/docs/results.py --write",
                file=sys.stderr,
            )
            return 1
        return 0
    if new != old:
        README.write_text(new, encoding="utf-8")
        print("README.md: headline table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
