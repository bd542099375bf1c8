"""numba never swaps sys.stderr under lmlab: its kernels load in background threads."""

from __future__ import annotations

import subprocess
import sys


def test_numba_error_highlighting_is_off_once_lmlab_is_imported() -> None:
    code = (
        "import lmlab, sys, threading\n"
        "mine = sys.stderr\n"
        "seen = []\n"
        "def load():\n"
        "    import numba.cpython.listobj  # builds numba errors: colorama's init/deinit\n"
        "t = threading.Thread(target=load); t.start()\n"
        "while t.is_alive():\n"
        "    seen.append(sys.stderr is mine)\n"
        "import numba.core.errors as e\n"
        "print(type(e.termcolor()).__name__, all(seen))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["NOPColorScheme", "True"], out.stdout + out.stderr
