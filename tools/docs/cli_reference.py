"""Write the CLI reference page from lmlab's own argparse parsers.

The page is generated, never edited: it walks ``lmlab.cli.build_parser()`` (every verb and
sub-verb) and prints each command's usage, description and options, so a renamed or new
flag shows up in the docs the moment it exists in the code. Run it alone to print the page:

    python tools/docs/cli_reference.py > cli.md
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

INTRO = """# CLI reference

Every `lmlab` command and option, generated from the command's own argument parser when the
documentation is built (`tools/docs/cli_reference.py`), so it cannot drift from the code.
`lmlab COMMAND --help` prints the same text in the terminal.

"""


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each sub-command, in the order ``--help`` lists them."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {
                a.dest: _expand(a.help or "", {"prog": parser.prog})
                for a in action._choices_actions
            }
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias of a command already listed
                    continue
                seen.add(id(sub))
                out.append((name, helps.get(name, ""), sub))
    return out


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """Every (command path, help, parser) below ``parser``, depth first."""
    for name, help_, sub in _subcommands(parser):
        yield (*path, name), help_, sub
        yield from walk(sub, (*path, name))


def _cell(text: str) -> str:
    """One Markdown table cell or paragraph: one line, pipes and angle brackets escaped."""
    text = " ".join(text.split()).replace("|", "\\|")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("[", "\\[").replace("]", "\\]")  # not Markdown link references


def _expand(text: str, params: dict) -> str:
    """Help text as argparse prints it (``%(default)s`` filled in, ``%%`` a percent sign)."""
    if "%" not in text:
        return text
    try:
        return text % params
    except (KeyError, TypeError, ValueError):
        return text


def _option_row(action: argparse.Action, parser: argparse.ArgumentParser) -> str | None:
    if action.help == argparse.SUPPRESS or isinstance(
        action, argparse._SubParsersAction | argparse._HelpAction
    ):
        return None
    formatter = parser._get_formatter()
    if action.option_strings:
        name = ", ".join(f"`{s}`" for s in action.option_strings)
        if action.nargs != 0:
            name += f" `{formatter._format_args(action, formatter._get_default_metavar_for_optional(action))}`"
    else:
        name = f"`{formatter._format_args(action, formatter._get_default_metavar_for_positional(action))}`"
    params = {**vars(action), "prog": parser.prog}
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    help_ = _expand(action.help or "", params)
    extra = []
    if action.choices is not None and "{" not in name:
        extra.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    default = action.default
    if (
        action.option_strings
        and default not in (None, False, argparse.SUPPRESS, [], "")
        and "default" not in (action.help or "")
        and action.nargs != 0
    ):
        extra.append(f"default `{default}`")
    text = _cell(help_)
    if extra:
        text = f"{text} ({'; '.join(extra)})" if text else "; ".join(extra)
    return f"| {name} | {text} |"


def command_section(path: tuple[str, ...], help_: str, parser: argparse.ArgumentParser) -> str:
    level = "#" * min(len(path) + 1, 4)
    lines = [f"{level} lmlab {' '.join(path)}", ""]
    if help_:
        lines += [_cell(help_)[0].upper() + _cell(help_)[1:] + ".", ""]
    description = parser.description or ""
    if "%(prog)" in description:  # as argparse does: nothing else is expanded
        description = description % {"prog": parser.prog}
    if description and _cell(description) != _cell(help_):
        lines += [_cell(description), ""]
    usage = parser.format_usage().strip()
    lines += ["```text", usage, "```", ""]
    rows = [r for a in parser._actions if (r := _option_row(a, parser))]
    subs = _subcommands(parser)
    if rows:
        lines += ["| argument | what |", "|---|---|", *rows, ""]
    if subs:
        lines += ["| command | what |", "|---|---|"]
        lines += [
            f"| [`lmlab {' '.join((*path, n))}`](#{_anchor((*path, n))}) | {_cell(h)} |"
            for n, h, _ in subs
        ]
        lines.append("")
    if parser.epilog:
        lines += ["```text", parser.epilog.strip(), "```", ""]
    return "\n".join(lines)


def _anchor(path: tuple[str, ...]) -> str:
    """The id MkDocs' toc extension gives the heading ``lmlab <path>``."""
    return "-".join(["lmlab", *path]).lower()


def render() -> str:
    """The whole CLI reference page as Markdown."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to the terminal's width
    try:
        from lmlab.cli import build_parser

        root = build_parser()
        parts = [INTRO, "| command | what |", "|---|---|"]
        parts += [
            f"| [`lmlab {n}`](#{_anchor((n,))}) | {_cell(h)} |" for n, h, _ in _subcommands(root)
        ]
        parts.append("")
        parts += [command_section(p, h, s) for p, h, s in walk(root)]
        return "\n".join(parts)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


if __name__ == "__main__":
    print(render())
