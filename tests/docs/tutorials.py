"""Read the shell and Python blocks of the docs and say what the tutorial tests do with them.

A fenced ``bash`` block must follow a marker line, an HTML comment the site does not show:

    <!-- test: run -->                        run it as written
    <!-- test: run --steps 20 --depth 1 -->   run it with these flags' values replacing the
                                              block's own (fast mode; each flag must occur)
    <!-- test: run train+="--set x=1" -->      run it with these arguments appended to
                                              every ``lmlab train`` command (lab.sweep+=
                                              for ``lmlab lab sweep``)
    <!-- test: run except=serve,chat -->      run it without its lmlab serve/chat commands
    <!-- test: run needs=smollm2 -->          run it only where the built-in SmolLM2 is
                                              installed (needs=shared: the shared data folder)
    <!-- test: skip: REASON -->               do not run it (a server, an install, an hour)

A ``python`` block with ``<!-- test: run -->`` runs too. Every ``lmlab`` command in every
shell block, run or not, is also parsed by lmlab's own argument parser.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL = {"bash", "sh", "shell"}
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_MARKER = re.compile(r"^<!-- test: (.*?) -->$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # the text after "test:", or None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Plan:
    """What a marker asks: run or skip, requirements, flag overrides."""

    run: bool
    reason: str = ""
    needs: list[str] = field(default_factory=list)
    overrides: list[tuple[str, str]] = field(default_factory=list)
    appends: list[tuple[str, str]] = field(default_factory=list)  # (verb, arguments)
    leave_out: list[str] = field(default_factory=list)  # lmlab verbs not run (servers, chats)


def doc_pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, each with the marker on the line before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        prev = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mk = _MARKER.match(prev)
        out.append(Block(page, i + 1, lang, "\n".join(lines[i + 1 : j]) + "\n", mk and mk.group(1)))
        i = j + 1
    return out


def plan(marker: str) -> Plan:
    """Parse a marker's text (after ``test:``)."""
    if marker.startswith("skip"):
        reason = marker[4:].lstrip(": ").strip()
        if not reason:
            raise ValueError("a skip marker must say why: <!-- test: skip: REASON -->")
        return Plan(run=False, reason=reason)
    if not (marker == "run" or marker.startswith("run ")):
        raise ValueError(
            f"unknown marker {marker!r}: use 'run [needs=...] [--flag value ...]' or 'skip: why'"
        )
    words = shlex.split(marker[3:])
    p = Plan(run=True)
    i = 0
    while i < len(words):
        w = words[i]
        verb, plus, extra = w.partition("+=")
        if plus and re.fullmatch(r"[\w.-]+", verb):
            p.appends.append((verb, extra))
            i += 1
        elif w.startswith("except="):
            p.leave_out += w[len("except=") :].split(",")
            i += 1
        elif w.startswith("needs="):
            p.needs += w[len("needs=") :].split(",")
            i += 1
        elif w.startswith("-") and i + 1 < len(words):
            p.overrides.append((w, words[i + 1]))
            i += 2
        else:
            raise ValueError(f"marker {marker!r}: {w!r} is neither needs=... nor '--flag value'")
    return p


def fast_mode(code: str, p: Plan) -> str:
    """The block as the test runs it: the marker's flag values in place of the block's, and
    ``VERB+="ARGS"`` appended to every ``lmlab VERB`` command."""
    code = apply_overrides(code, p.overrides)
    if p.leave_out:
        code = _leave_out(code, p.leave_out)
    for verb, extra in p.appends:
        code = _append(code, verb, extra)
    return code


def _leave_out(code: str, verbs: list[str]) -> str:
    """The block without its ``lmlab VERB`` commands (each on lines of its own)."""
    out, dropping = [], False
    drop = re.compile(rf"^\s*lmlab\s+({'|'.join(map(re.escape, verbs))})(\s|$)")
    for line in code.splitlines():
        if not dropping and drop.match(line):
            dropping = True
        if not dropping:
            out.append(line)
        elif not line.rstrip().endswith("\\"):
            dropping = False
    return "\n".join(out) + "\n"


_COMMENT = re.compile(r"\s#(\s|$)")
_OPERATOR = re.compile(r"\s(&&|\|\||;|\|)\s")


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one line; the comment keeps its leading whitespace and #."""
    m = _COMMENT.search(line)
    return (line[: m.start()], line[m.start() :]) if m else (line, "")


def _append(code: str, verb: str, extra: str) -> str:
    out, inside, n = [], False, 0
    words = r"\s+".join(map(re.escape, verb.split(".")))  # lab.sweep: lmlab lab sweep
    start = re.compile(rf"(^|\s)(lmlab|-m lmlab)\s+{words}(\s|$)")
    for line in code.splitlines():
        body, comment = _split_comment(line)
        at = 0
        if not inside and (m := start.search(body)):
            inside, at = True, m.end()
        if inside and not body.rstrip().endswith("\\"):
            op = _OPERATOR.search(body, at)  # `lmlab a ... && lmlab b`: before the &&
            cut = op.start() if op else len(body.rstrip())
            line = f"{body[:cut]} {extra}{body[cut:]}{comment}"
            inside, n = False, n + 1
        out.append(line)
    if not n:
        raise ValueError(f"{verb}+=...: the block has no lmlab {verb.replace('.', ' ')} command")
    return "\n".join(out) + "\n"


def apply_overrides(code: str, overrides: list[tuple[str, str]]) -> str:
    """The block with each ``--flag value`` replaced by the marker's value (fast mode);
    comments are left as they are."""
    for flag, value in overrides:
        pattern = re.compile(rf"(?<=\s){re.escape(flag)}(\s+|=)(\"[^\"]*\"|'[^']*'|\S+)")
        total, lines = 0, []
        for line in code.splitlines():
            body, comment = _split_comment(line)
            body, n = pattern.subn(
                lambda m, v=value, f=flag: f"{f}{m.group(1)}{shlex.quote(v)}", body
            )
            total += n
            lines.append(body + comment)
        if not total:
            raise ValueError(f"override {flag} {value}: the block never sets {flag}")
        code = "\n".join(lines) + "\n"
    return code


def commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block, as argv lists (continuations joined, comments,
    here-document bodies and operators dropped)."""
    text = code.replace("\\\n", " ")
    lines: list[str] = []
    heredoc: str | None = None
    for line in text.splitlines():
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if m:
            heredoc = m.group(1)
            line = line[: m.start()]
        lines.append(line)
    out: list[list[str]] = []
    pending = ""
    for line in lines:
        pending = f"{pending}\n{line}" if pending else line
        lex = shlex.shlex(pending, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        try:
            tokens = list(lex)
        except ValueError:  # a quoted string goes on over the next line
            continue
        pending = ""
        argv: list[str] = []
        for tok in tokens:
            if tok and set(tok) <= set("&|;<>()"):
                if argv:
                    out.append(argv)
                argv = []
            else:
                argv.append(tok)
        if argv:
            out.append(argv)
    return out


def lmlab_argv(argv: list[str]) -> list[str] | None:
    """The arguments lmlab would see, for ``lmlab ...``, ``python -m lmlab ...`` and
    ``torchrun ... -m lmlab ...``; None for any other command."""
    while argv and "=" in argv[0] and not argv[0].startswith("-"):  # VAR=value prefixes
        argv = argv[1:]
    if not argv:
        return None
    if Path(argv[0]).name == "lmlab":
        return argv[1:]
    for i in range(len(argv) - 1):
        if argv[i] == "-m" and argv[i + 1] == "lmlab":
            return argv[i + 2 :]
    return None
