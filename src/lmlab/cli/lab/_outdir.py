"""Output folders of the lab's reproductions: never overwrite earlier results silently."""

from __future__ import annotations

from pathlib import Path

from lmlab.errors import LmlabError


def check_out(out: str, marker: str, overwrite: bool) -> Path:
    """``out`` as a Path; an error if it already holds ``marker`` and ``overwrite`` is off."""
    p = Path(out)
    if (p / marker).exists() and not overwrite:
        raise LmlabError(
            f"{p / marker} exists; pass --overwrite to replace it or choose another --out"
        )
    if p.exists() and not p.is_dir():
        raise LmlabError(f"{p} is a file, not a folder; choose another --out")
    return p
