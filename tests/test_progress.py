"""Progress off a terminal: one plain line every few seconds and the final figures, never
carriage-return redraws; nothing at all for work shorter than that."""

from __future__ import annotations

import io
import time

from lmlab.progress import progress_bar


def test_plain_lines_every_interval_then_the_final_figures() -> None:
    log = io.StringIO()  # not a terminal
    bar = progress_bar(file=log, every=0.2, total=40, desc="train", unit="step")
    t0 = time.perf_counter()
    for i in range(40):
        time.sleep(0.025)
        bar.set_postfix(loss=f"{5 - i / 10:.3f}")  # tqdm redraws on each of these
        bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - t0
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= elapsed / 0.2 + 2, lines
    assert all(ln.startswith("train: ") for ln in lines)
    assert "100% (40/40)" in lines[-1] and "loss=1.100" in lines[-1]


def test_short_work_prints_nothing() -> None:
    log = io.StringIO()
    bar = progress_bar(file=log, every=5.0, total=10, desc="tokenising", disable=None)
    bar.update(10)
    bar.close()
    assert log.getvalue().strip() == ""


def test_disabled_bar_is_silent() -> None:
    log = io.StringIO()
    bar = progress_bar(file=log, every=0.0, total=3, disable=True)
    bar.update(3)
    bar.close()
    assert log.getvalue() == ""
