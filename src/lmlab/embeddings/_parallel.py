"""Run a list of jobs on worker threads (the work itself is a numba kernel that drops the GIL)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm


def run_jobs(
    jobs: Sequence[Any],
    fn: Callable[[Any], int],
    workers: int,
    bar: tqdm | None = None,
    postfix: Callable[[Any], dict[str, str]] | None = None,
) -> None:
    """Call ``fn(job)`` for every job, in list order, on ``workers`` threads.

    ``fn`` returns how much progress the job made (added to ``bar``). With one worker the jobs
    run strictly in order, which keeps seeded training reproducible. The first exception
    stops the other workers and is re-raised here.
    """
    lock = threading.Lock()
    state: dict[str, Any] = {"next": 0, "error": None}

    def worker() -> None:
        while True:
            with lock:
                if state["next"] >= len(jobs) or state["error"] is not None:
                    return
                job = jobs[state["next"]]
                state["next"] += 1
            try:
                done = fn(job)
            except BaseException as e:  # surface kernel errors in the main thread
                state["error"] = e
                return
            if bar is not None:
                with lock:
                    bar.update(done)
                    if postfix is not None:
                        bar.set_postfix(postfix(job), refresh=False)

    if workers <= 1:
        worker()
    else:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if state["error"] is not None:
        raise state["error"]
