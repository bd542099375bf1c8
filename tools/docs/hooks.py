"""MkDocs hooks: the generated pages and the links that point outside docs/.

- ``cli.md`` is written from lmlab's argparse parsers (``cli_reference.py``);
- ``benchmarks.md`` is ``benchmarks/RESULTS.md``, the one home of every results table;
- ``<!-- results: NAME -->`` in a page is replaced by that section of RESULTS.md (without
  its heading), ``<!-- results: NAME table -->`` by its tables alone (``tables=1,2``: the
  first two);
- a link to ``benchmarks/RESULTS.md`` or to ``README.md`` from a page (as pages moved out of
  the README still write them) points at the Benchmarks page or the home page instead;
- pages other people are still writing (``OPTIONAL``) leave the navigation while absent.
"""

from __future__ import annotations

import logging
import posixpath
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli_reference  # noqa: E402
import results  # noqa: E402
from mkdocs.structure.files import File  # noqa: E402

log = logging.getLogger("mkdocs.hooks.lmlab")

# Pages that land with their features; the nav lists them, the build skips them until then.
OPTIONAL = {
    "applications/classification.md",
    "applications/qa.md",
    "applications/translation.md",
    "serving.md",
    "compression.md",
}

BENCHMARKS_INTRO = """# Benchmarks

Every speed or quality claim in these pages is measured by a script in `benchmarks/` that
runs lmlab and its peer side by side, in one process where it can, and prints the table;
this page is `benchmarks/RESULTS.md`, where those scripts write their latest figures, with
the machine and the load they were measured under. Rerun one with the command in its
heading (`make bench` runs the main ones).
"""

_RESULTS_LINK = re.compile(r"\]\((?:\.\./)*(?:\./)?benchmarks/RESULTS\.md(#[^)\s]*)?\)")
_README_LINK = re.compile(r"\]\((?:\.\./)*(?:\./)?README\.md(#[^)\s]*)?\)")
_INCLUDE = re.compile(r"^<!-- results: ([\w-]+)( tables?(?:=([\d,]+))?)? -->$", re.M)


def _benchmarks_page() -> str:
    text = results.RESULTS.read_text(encoding="utf-8")
    text = re.sub(r"\A# [^\n]*\n", "", text)  # its own title gives way to the page's
    return BENCHMARKS_INTRO + text


def _prune(nav: list, present: set[str]) -> list:
    out = []
    for item in nav:
        if isinstance(item, dict):
            (title, value), *_ = item.items()
            if isinstance(value, list):
                value = _prune(value, present)
                if value:
                    out.append({title: value})
            elif value in OPTIONAL and value not in present:
                log.info("nav: %s is not written yet; left out", value)
            else:
                out.append(item)
        elif isinstance(item, str) and item in OPTIONAL and item not in present:
            log.info("nav: %s is not written yet; left out", item)
        else:
            out.append(item)
    return out


def on_files(files, config):
    for name, content in (
        ("cli.md", cli_reference.render()),
        ("benchmarks.md", _benchmarks_page()),
    ):
        files.append(File.generated(config, name, content=content))
    present = {f.src_uri for f in files}
    if config.get("nav"):
        config["nav"] = _prune(config["nav"], present)
    return files


def _include(m: re.Match) -> str:
    """A RESULTS.md section without its own heading (or, with ``table``, its tables only)."""
    if m.group(2):
        which = [int(i) for i in m.group(3).split(",")] if m.group(3) else None
        return results.tables(m.group(1), which)
    body = results.section(m.group(1), demote=1)
    return re.sub(r"\A#{1,6} [^\n]*\n+", "", body)


def on_page_markdown(markdown, page, config, files):
    here = posixpath.dirname(page.file.src_uri)

    def rel(target: str) -> str:
        return posixpath.relpath(target, here or ".")

    markdown = _INCLUDE.sub(_include, markdown)
    markdown = _RESULTS_LINK.sub(lambda m: f"]({rel('benchmarks.md')}{m.group(1) or ''})", markdown)
    markdown = _README_LINK.sub(lambda m: f"]({rel('index.md')}{m.group(1) or ''})", markdown)
    return markdown
