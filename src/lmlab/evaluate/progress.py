"""Progress of a long evaluation: a tqdm bar on a terminal, else a plain line now and then.

When stderr is not a terminal (a log file, CI), carriage-return updates would fill the log,
so one line is printed every ``every`` seconds instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """``update(n)`` as work is done, ``close()`` at the end; silent if not ``enabled``."""

    def __init__(self, total: int, desc: str, enabled: bool = True, every: float = 10.0) -> None:
        self.total, self.desc, self.every = total, desc, every
        self.done = 0
        self._bar: Any = None
        self._plain = False
        if not enabled:
            return
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit="tok", unit_scale=True, leave=False, file=sys.stderr
            )
        else:
            self._plain = True
            self._t0 = self._last = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._plain and (now := time.perf_counter()) - self._last >= self.every:
            self._last = now
            rate = self.done / max(now - self._t0, 1e-9)
            left = (self.total - self.done) / max(rate, 1e-9)
            print(
                f"{self.desc}: {self.done / max(1, self.total):.0%} "
                f"({self.done:,}/{self.total:,} tokens, {rate:,.0f} tokens/s, {left:.0f} s left)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
