"""Progress bars that suit where they are shown.

On a terminal: an ordinary ``tqdm`` bar, redrawn in place. Anywhere else (a log file, CI, a
pipe), carriage-return redraws would leave hundreds of updates in the log, so the bar
becomes one plain line every few seconds (and one at the end), with the same figures: done,
total, rate, time left and the loop's own numbers (loss, tokens/s).
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm

PLAIN_EVERY = 10.0  # seconds between two plain progress lines
PLAIN_FORMAT = (
    "{desc}: {percentage:3.0f}% ({n_fmt}/{total_fmt}) {elapsed}<{remaining}, {rate_fmt}{postfix}"
)


class _Lines:
    """A stream for tqdm that turns each redraw into one line (no carriage returns)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.last = ""

    def write(self, s: str) -> None:
        for part in s.replace("\r", "\n").split("\n"):
            part = part.strip()
            if part and part != self.last:  # a redraw of the same figures is no news
                self.stream.write(part + "\n")
                self.last = part

    def flush(self) -> None:
        self.stream.flush()


class _PlainBar(tqdm):
    """A tqdm whose redraws (on updates and on ``set_postfix``) come at most every
    ``every`` seconds, the first one after ``every`` seconds: short work prints nothing.
    Closing it prints the final figures if anything was shown before."""

    def __init__(self, *args: Any, every: float = PLAIN_EVERY, **kwargs: Any) -> None:
        self._every, self._shown_at, self._shown = every, time.perf_counter(), False
        super().__init__(*args, **kwargs)

    def refresh(self, nolock: bool = False, lock_args: Any = None) -> None:
        now = time.perf_counter()
        if now - self._shown_at < self._every:
            return
        self._shown_at, self._shown = now, True
        super().refresh(nolock=nolock, lock_args=lock_args)

    def close(self) -> None:
        if not self._shown:
            self.leave = False  # nothing to sum up; tqdm then writes only a blank line
        super().close()


def is_terminal(stream: Any = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(*, every: float = PLAIN_EVERY, file: Any = None, **kwargs: Any) -> tqdm:
    """``tqdm(**kwargs)`` on a terminal; elsewhere a bar that prints one plain line every
    ``every`` seconds while the work lasts, and its final figures (nothing for work shorter
    than that). ``disable=None`` (tqdm: off when not a terminal) is read as "on" here, since
    these plain lines are what a log should get."""
    stream = sys.stderr if file is None else file
    if is_terminal(stream):
        return tqdm(file=stream, **kwargs)
    if kwargs.get("disable") is None:
        kwargs["disable"] = False
    kwargs.pop("dynamic_ncols", None)
    kwargs.setdefault("bar_format", PLAIN_FORMAT if kwargs.get("total") else None)
    return _PlainBar(
        file=_Lines(stream), every=every, mininterval=every, leave=True, ascii=True,
        **{k: v for k, v in kwargs.items() if k not in ("leave", "mininterval", "maxinterval")},
    )  # fmt: skip
