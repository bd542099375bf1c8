"""The sweep's results table: one SQLite file holding every measurement of every run.

Schema (long format, one row per run x checkpoint step x metric)::

    runs(run_id TEXT PRIMARY KEY,      -- hash of the RunSpec (task, size, data, steps, seed,
         task, size, n_params,         --  batch size, lr, ...); the key a re-run looks up
         data, steps, seed,
         spec TEXT,                    -- the whole RunSpec as JSON
         seq_len, wall_s, finished_at)
    measurements(run_id, step,         -- checkpoint: optimizer steps taken
                 tokens,               -- tokens processed so far (batch x sequence x step)
                 compute,              -- 6 x n_params x tokens (training FLOPs)
                 metric, value,        -- e.g. ("exact_match", 0.93)
                 PRIMARY KEY (run_id, step, metric))
    VIEW results                       -- measurements joined with their run's columns

A run and all its measurements are written in one transaction when it finishes, so the
file never holds half a run; a re-run of the same sweep skips every ``run_id`` present.
Any SQLite client reads it: ``sqlite3 add.sqlite "select * from results limit 5"``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError
from lmlab.lab.trainer import RunResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, task TEXT NOT NULL, size TEXT NOT NULL, n_params INTEGER NOT NULL,
    data INTEGER NOT NULL, steps INTEGER NOT NULL, seed INTEGER NOT NULL, spec TEXT NOT NULL,
    seq_len INTEGER, wall_s REAL, finished_at TEXT
);
CREATE TABLE IF NOT EXISTS measurements (
    run_id TEXT NOT NULL REFERENCES runs(run_id), step INTEGER NOT NULL, tokens INTEGER NOT NULL,
    compute REAL NOT NULL, metric TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, step, metric)
);
CREATE VIEW IF NOT EXISTS results AS
    SELECT r.task, r.size, r.n_params, r.data, r.steps, r.seed, m.step, m.tokens, m.compute,
           m.metric, m.value, r.run_id
    FROM measurements m JOIN runs r USING (run_id);
"""
CHECKPOINT_KEYS = ("step", "tokens", "compute")


def connect(path: str | Path, create: bool = True) -> sqlite3.Connection:
    """Open (and if ``create``, initialise) a results database."""
    p = Path(path)
    if not create and not p.is_file():
        raise LmlabError(
            f"results database {p} not found; run `lmlab lab sweep ... --db {p}` first"
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(p, timeout=60)
        if create:
            con.executescript(SCHEMA)
        else:
            con.execute("SELECT 1 FROM runs LIMIT 1")
    except sqlite3.DatabaseError as e:
        raise LmlabError(f"{p} is not an lmlab results database ({e})") from e
    return con


def finished_ids(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT run_id FROM runs")}


def write_run(con: sqlite3.Connection, result: RunResult) -> None:
    """Store one finished run and all its checkpoints, atomically."""
    s = result.spec
    rows = []
    for ev in result.evals:
        for metric, value in ev.items():
            if metric not in CHECKPOINT_KEYS:
                rows.append((s.run_id, ev["step"], ev["tokens"], ev["compute"], metric, value))
    with con:
        con.execute("DELETE FROM measurements WHERE run_id = ?", (s.run_id,))
        con.execute(
            "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                s.run_id,
                s.task,
                s.size,
                result.n_params,
                s.data,
                s.steps,
                s.seed,
                json.dumps(s.identity(), sort_keys=True),
                result.seq_len,
                result.wall_s,
                time.strftime("%Y-%m-%dT%H:%M:%S"),
            ),
        )
        con.executemany("INSERT INTO measurements VALUES (?,?,?,?,?,?)", rows)


def load_runs(con: sqlite3.Connection, task: str | None = None) -> list[dict[str, Any]]:
    """Every run (optionally of one task) as a dict of its ``runs`` columns."""
    q = (
        "SELECT * FROM runs"
        + (" WHERE task = ?" if task else "")
        + " ORDER BY n_params, data, steps, seed"
    )
    cur = con.execute(q, (task,) if task else ())
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur]


def load_checkpoints(con: sqlite3.Connection, task: str | None = None) -> list[dict[str, Any]]:
    """Wide rows, one per run and checkpoint: the run's columns, step, tokens, compute and
    every metric as a key."""
    q = "SELECT * FROM results" + (" WHERE task = ?" if task else "")
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for r in con.execute(q, (task,) if task else ()):
        (task_, size, n_params, data, steps, seed, step, tokens, compute, metric, value, rid) = r
        row = rows.setdefault(
            (rid, step),
            {
                "run_id": rid,
                "task": task_,
                "size": size,
                "n_params": n_params,
                "data": data,
                "steps": steps,
                "seed": seed,
                "step": step,
                "tokens": tokens,
                "compute": compute,
            },
        )
        row[metric] = value
    return sorted(
        rows.values(), key=lambda d: (d["n_params"], d["data"], d["steps"], d["seed"], d["step"])
    )


def tasks_in(con: sqlite3.Connection) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT task FROM runs ORDER BY task")]


def write_many(con: sqlite3.Connection, results: Iterable[RunResult]) -> None:
    for r in results:
        write_run(con, r)
