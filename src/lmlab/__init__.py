"""lmlab: a workbench for language models, from n-grams to Transformers, on your own text."""

import os as _os

# numba colours its error messages through colorama, which swaps sys.stderr for the whole
# process while it formats one (even with numba's colour scheme off), and lmlab loads its
# numba kernels in background threads: a swap there races with anything that sets
# sys.stderr itself (pytest's capsys, notebooks) and can leave it pointing elsewhere.
_os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")

__version__ = "0.1.0"
