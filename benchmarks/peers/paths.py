"""Where the peers built by ``benchmarks/peers/build.sh`` (``make bench-peers``) live.

The build folder is ``$LMLAB_PEERS``, else ``../peers-build`` beside the checkout. Each
function returns the peer's path, or ``None`` with nothing built, so a benchmark can say
"not built: make bench-peers" instead of quoting a figure from elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def peers_dir() -> Path:
    return Path(os.environ.get("LMLAB_PEERS", ROOT.parent / "peers-build"))


def _existing(p: Path) -> Path | None:
    return p if p.exists() else None


def lmplz() -> Path | None:
    """KenLM's ``lmplz`` (estimates an ARPA file from text)."""
    return _existing(peers_dir() / "kenlm" / "bin" / "lmplz")


def kenlm_query() -> Path | None:
    return _existing(peers_dir() / "kenlm" / "bin" / "query")


def glove_bin() -> Path | None:
    """Stanford GloVe's build folder (vocab_count, cooccur, shuffle, glove)."""
    return _existing(peers_dir() / "glove" / "build")


def nanogpt() -> Path | None:
    """A writable copy of nanoGPT (train.py, sample.py, data/)."""
    return _existing(peers_dir() / "nanoGPT")


NOT_BUILT = "not built here: make bench-peers KENLM=... GLOVE=... NANOGPT=... (see benchmarks/peers/build.sh)"
