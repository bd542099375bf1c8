"""Sweeps: train a family of models over sizes x data x steps x seeds, resumably.

:func:`plan` expands the grid into :class:`~lmlab.lab.trainer.RunSpec` work items;
:func:`run_sweep` runs the ones the results database does not hold yet, in parallel
processes on this machine (each with ``cores / workers`` torch threads), or as Ray tasks
on a cluster (``ray_address``; ``"local"`` starts a private local Ray instance). Either
way the parent process alone writes the SQLite file, one finished run at a time, so an
interrupted sweep loses at most the runs in flight and a re-run picks up the rest.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError
from lmlab.lab import results as db
from lmlab.lab.defaults import DEFAULT_SEEDS, DEFAULT_SIZES  # noqa: F401 (re-exported)
from lmlab.lab.tasks import task_from_spec
from lmlab.lab.trainer import RunResult, RunSpec, parse_size, train_and_evaluate


def plan(
    task: str,
    sizes: Iterable[str] = DEFAULT_SIZES,
    data: Iterable[int] = (10_000,),
    steps: Iterable[int] = (1000,),
    seeds: Iterable[int] = DEFAULT_SEEDS,
    **train: Any,
) -> list[RunSpec]:
    """Every combination of the grid as a RunSpec (``train``: other RunSpec fields)."""
    t = task_from_spec(task)  # an early error for an unknown task or parameter
    spec = t.spec  # the canonical spelling, so equal tasks share run ids
    sizes, data = list(sizes), list(data)
    problems = t.all_problems()
    n_test = train.get("n_test", RunSpec.n_test)
    if problems is not None and data and max(data) + n_test > len(problems):
        raise LmlabError(
            f"task {spec} has {len(problems)} distinct problems, fewer than --data "
            f"{max(data)} + {n_test} test problems; lower --data or --test-size"
        )
    for s in sizes:
        parse_size(s)
    try:
        return [
            RunSpec(task=spec, size=s, data=d, steps=n, seed=seed, **train)
            for s, d, n, seed in itertools.product(sizes, data, steps, seeds)
        ]
    except TypeError as e:
        raise LmlabError(f"bad sweep setting: {e}") from e


def cost(spec: RunSpec) -> float:
    """Rough relative cost (parameters x steps), to start the longest runs first."""
    w, layers, _ = parse_size(spec.size)
    return (12 * layers * w * w + 64 * w) * spec.steps * spec.batch_size


@dataclass
class SweepSummary:
    db: Path
    total: int
    skipped: int
    ran: int
    wall_s: float


def _work(spec: RunSpec) -> RunResult:
    return train_and_evaluate(spec)


def run_sweep(
    specs: list[RunSpec],
    db_path: str | Path,
    workers: int | None = None,
    ray_address: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    on_result: Callable[[RunResult], None] | None = None,
) -> SweepSummary:
    """Run the specs the database does not hold yet; store each result as it finishes.

    ``workers`` processes (default: one per core, or fewer if there are fewer runs), each
    with ``threads`` torch threads (default: cores / workers). ``workers=1`` runs in this
    process. Scripts that call this must guard their entry point with
    ``if __name__ == "__main__":`` (worker processes are spawned, not forked).
    """
    t0 = time.perf_counter()
    con = db.connect(db_path)
    done = db.finished_ids(con)
    todo = sorted((s for s in specs if s.run_id not in done), key=cost, reverse=True)
    todo = list({s.run_id: s for s in todo}.values())  # a grid listed twice runs once
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, len(todo) or 1))
    threads = threads or max(1, cores // workers)
    todo = [replace(s, threads=threads) for s in todo]

    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="runs", unit="run")

    def store(res: RunResult) -> None:
        db.write_run(con, res)
        if on_result is not None:
            on_result(res)
        if bar is not None:
            bar.set_postfix_str(f"{res.spec.size}: {res.wall_s:.0f}s", refresh=False)
            bar.update(1)

    try:
        if not todo:
            pass
        elif ray_address:
            _run_ray(todo, ray_address, workers, threads, store)
        elif workers == 1:
            for s in todo:
                store(train_and_evaluate(s))
        else:
            pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
            try:
                futures = [pool.submit(_work, s) for s in todo]
                for f in as_completed(futures):
                    store(f.result())
            except BaseException:  # Ctrl-C or a failed run: stop the other workers too
                pool.shutdown(wait=False, cancel_futures=True)
                for proc in list((getattr(pool, "_processes", None) or {}).values()):
                    proc.terminate()
                raise
            pool.shutdown()
    finally:
        if bar is not None:
            bar.close()
        con.close()
    return SweepSummary(
        Path(db_path), len(specs), len(specs) - len(todo), len(todo), time.perf_counter() - t0
    )


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, in one line, when a ``host:port`` (or ``ray://host:port``) address has
    nothing listening, instead of waiting out Ray's own connection retries."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms: Ray resolves them itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise LmlabError(
            f"cannot reach the Ray cluster at {address} ({e.strerror or e}); start one with "
            "`ray start --head` or pass its address, or use --ray local"
        ) from None


def _run_ray(todo: list[RunSpec], address: str, workers: int, threads: int, store) -> None:
    """The same work items as Ray tasks, ``threads`` CPUs each; results come back here."""
    try:
        import ray
    except ImportError as e:
        raise LmlabError("--ray needs the ray package: pip install 'lmlab[ray]'") from e
    started = not ray.is_initialized()
    if started:
        if address == "local":
            ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False)
        else:
            _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise LmlabError(f"cannot reach the Ray cluster at {address} ({e})") from e
    try:
        remote = ray.remote(num_cpus=threads)(_work)
        pending = [remote.remote(s) for s in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            store(ray.get(ready[0]))
    finally:
        if started:
            ray.shutdown()
