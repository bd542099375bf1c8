"""Which number format a run computes in: ``fp32``, ``bf16`` autocast, or ``auto``.

``auto`` takes bf16 where the hardware does bf16 matrix products natively (a CUDA GPU that
supports it; an x86 CPU with AVX512-BF16 or AMX, where lmlab's bf16 step is about 1.5x the
fp32 one) and fp32 elsewhere, since emulated bf16 is slower than fp32.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16", "auto")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX-BF16 (read from Linux's /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
    return None
