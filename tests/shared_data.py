"""Where the public data lives for the tests: ``$LMLAB_SHARED_DATA`` or ``../shared/data``
beside the project. A module of its own (not ``conftest``), so test modules can import it
whichever folder's conftest pytest loaded first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get(
        "LMLAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)


def shared_file(*parts: str) -> Path:
    """A file under the shared data folder, or skip the test with the reason."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data file {p} not found (set LMLAB_SHARED_DATA to the data folder)")
    return p
