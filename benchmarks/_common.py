"""Helpers shared by the benchmark scripts: data location, machine line, tables."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
from pathlib import Path

from lmlab._allocator import tune_allocator

tune_allocator()  # as the lmlab command does; peers in the same process benefit equally

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LMLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared(*parts: str) -> Path:
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        sys.exit(f"benchmark data {p} not found: set LMLAB_SHARED_DATA to the shared data folder")
    return p


def machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in r] for r in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def steps_in(
    seconds: float,
    model,
    vocab: int,
    batch: int,
    context: int,
    train_cfg: dict,
    bf16: bool = False,
    tokens=None,
) -> int:
    """Optimizer steps of ``model`` that fit in ``seconds``, timed on a few real steps
    (on windows of ``tokens`` if given: an adaptive softmax costs more on uniform ids)."""
    import time

    import torch
    import torch.nn.functional as F

    from lmlab.train.config import TrainConfig
    from lmlab.train.loop import make_optimizer

    opt = make_optimizer(model, TrainConfig(**{k: v for k, v in train_cfg.items() if k != "steps"}))
    if tokens is not None:
        import numpy as np

        from lmlab.data.batches import sample_batch

        x, _ = sample_batch(tokens, batch, context, np.random.default_rng(0))
    else:
        x = torch.randint(0, vocab, (batch, context))
    for i in range(25):
        if i == 5:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if getattr(model, "computes_loss", False):  # the path the trainer takes
                loss = model(x, targets=x)
            else:
                loss = F.cross_entropy(model(x).float().reshape(-1, vocab), x.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    per_step = (time.perf_counter() - t0) / 20
    return max(50, int(seconds * 0.95 / per_step))


def write_results(path: Path, section: str, body: str) -> None:
    """Replace the ``<!-- section:start -->`` ... ``<!-- section:end -->`` part of RESULTS.md."""
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    if start not in text or end not in text:
        sys.exit(f"{path} has no {start} ... {end} markers; add them where the figures belong")
    new = re.sub(
        re.escape(start) + ".*?" + re.escape(end),
        lambda _: f"{start}\n{body}\n{end}",
        text,
        flags=re.S,
    )
    path.write_text(new, encoding="utf-8")


class _Tee:
    """A text stream that writes through to ``out`` and keeps a copy."""

    def __init__(self, out) -> None:
        self.out, self.parts = out, []

    def write(self, s: str) -> int:
        self.parts.append(s)
        return self.out.write(s)

    def flush(self) -> None:
        self.out.flush()


@contextlib.contextmanager
def results_section(section: str, write: bool, title: str):
    """Print as usual; with ``write``, also put everything printed inside the block into
    RESULTS.md's ``section`` under ``title``, with the date, the command, the machine and the
    load average before and after, so that ``make bench`` regenerates the file."""
    import datetime

    before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        yield
    finally:
        sys.stdout = tee.out
    if not write:
        return
    after = os.getloadavg()
    argv = " ".join(a for a in sys.argv[1:] if a != "--write")
    cmd = f"python benchmarks/{Path(sys.argv[0]).name}" + (f" {argv}" if argv else "")
    head = (
        f"## {title} — `{cmd}`\n\n"
        f"Measured {started} on {machine()}; load average {before[0]:.2f} before and "
        f"{after[0]:.2f} after (1-minute; on 2 cores the measured processes count too). "
        f"Regenerate with `{cmd} --write` (or `make bench`).\n\n"
    )
    write_results(ROOT / "benchmarks" / "RESULTS.md", section, head + "".join(tee.parts).strip())
