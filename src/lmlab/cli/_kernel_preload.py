"""Start loading the fast decoding kernel the moment a generating command starts.

Loading numba's cached kernel takes about a second, as long as importing PyTorch and
reading a run. The engine never waits for it (it decodes with PyTorch until the kernel is
ready), but tokens decoded before then cost several times a kernel step. Started before
PyTorch is imported, in a background thread, the load overlaps the command's own start-up,
so decoding runs at full speed from its first token.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lmlab.config import tomllib

_OFF = ("0", "false", "no", "off")  # as lmlab.generate.fastdecode.ENV


def start_kernel_preload(run: str | os.PathLike[str] | None) -> bool:
    """Begin loading the float32 kernel in a daemon thread if ``run`` is an lmlab run
    directory of a float Transformer (the weights that kernel decodes); returns whether it
    started. Anything unexpected just skips it: the engine loads the kernel itself."""
    if os.environ.get("LMLAB_FAST_DECODE", "1").strip().lower() in _OFF or run is None:
        return False
    try:
        config = tomllib.loads((Path(run) / "config.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    model = config.get("model", {})
    if model.get("family") != "transformer" or "quantization" in config or "source" in config:
        return False  # another family, or other weights (quantised, a GGUF file's blocks)
    threading.Thread(target=_load, name="lmlab-kernel-preload", daemon=True).start()
    return True


def _load() -> None:
    try:  # numba and the kernel only: PyTorch, imported by the command meanwhile, is not needed
        from lmlab.generate._fastdecode_kernels import warm_up

        warm_up(("float32",) * 6)
    except Exception:  # noqa: BLE001 - the engine reports real failures when it needs the kernel
        pass
