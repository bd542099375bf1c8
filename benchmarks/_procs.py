"""Whole-process timings, interleaved: the fair way to set lmlab beside a peer.

Each repeat runs every command once, in an order that alternates between repeats, from
process start to exit (its output saved), and records wall time, the children's CPU time
and the one-minute load average just before the run. Figures are medians with the spread.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass, field


@dataclass
class Timing:
    name: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    def spread(self) -> str:
        return f"{min(self.wall):.2f}–{max(self.wall):.2f}"

    def cell(self) -> str:
        return f"{self.median:.2f} s ({self.spread()})"


def _run(cmd: list[str], env: dict[str, str] | None, cwd: str | None) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def time_interleaved(
    commands: dict[str, list[str]],
    repeats: int = 5,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    before_each=None,
) -> dict[str, Timing]:
    """Run each command ``repeats`` times, interleaved; ``before_each(name)`` cleans up."""
    out = {name: Timing(name) for name in commands}
    names = list(commands)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            if before_each is not None:
                before_each(name)
            out[name].load.append(os.getloadavg()[0])
            wall, cpu = _run(commands[name], env, cwd)
            out[name].wall.append(wall)
            out[name].cpu.append(cpu)
    return out


def load_note(timings: dict[str, Timing]) -> str:
    loads = [x for t in timings.values() for x in t.load]
    return (
        f"load average before the runs {min(loads):.2f}–{max(loads):.2f} on {os.cpu_count()} cores"
    )
