"""From a results database to numbers and verdicts: curves over scale, fits, emergence.

Runs are grouped by *setting* (training problems x steps). Within a setting, each model
size's final checkpoint is aggregated over seeds (mean, sample sd, min, max, and every
seed's own value), giving one curve per metric against parameters; the loss curve gets
the power-law fit (on the mean, and per seed for the exponent's range), the discrete
metrics the emergence detector, and each discrete/continuous pair the mirage check. The
verdicts are made on the mean over seeds and checked against each seed's own curve
(:func:`lmlab.lab.emergence.emergence_across_seeds`), so they say how many seeds agree.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmlab.errors import LmlabError
from lmlab.lab import results as db
from lmlab.lab.emergence import (
    Emergence,
    MirageCheck,
    emergence_across_seeds,
    mirage_across_seeds,
)
from lmlab.lab.metrics import METRICS
from lmlab.lab.scaling import PowerLawFit, fit_power_law
from lmlab.lab.tasks import task_from_spec

# (discrete metric, continuous metric) pairs the mirage check compares
PAIRS = [
    ("exact_match", "token_accuracy"),
    ("exact_match", "answer_loglik"),
    ("exact_match", "edit_distance"),
    ("choice_accuracy", "brier"),
]


@dataclass
class Curve:
    """One setting's final metrics against parameters, aggregated over seeds.

    Per size: the mean over its seeds, the sample standard deviation (ddof 1; 0 with one
    seed), the min and max, and the number of seeds; ``by_seed[metric][seed]`` holds each
    seed's own values (NaN at a size where that seed has no run)."""

    data: int
    steps: int
    sizes: list[str]
    n_params: np.ndarray
    mean: dict[str, np.ndarray]
    lo: dict[str, np.ndarray]
    hi: dict[str, np.ndarray]
    seeds: int  # the most seeds any size has
    sd: dict[str, np.ndarray] = field(default_factory=dict)
    n: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # seeds per size
    seed_ids: list[int] = field(default_factory=list)
    by_seed: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.data:,} problems, {self.steps:,} steps"


@dataclass
class SettingAnalysis:
    curve: Curve
    fit: PowerLawFit | None
    fit_note: str
    # the same fit on each seed's own losses (seeds with a run at every size)
    seed_fits: dict[int, PowerLawFit] = field(default_factory=dict)
    emergence: list[Emergence] = field(default_factory=list)
    mirage: list[MirageCheck] = field(default_factory=list)
    # along training, per size (checkpoints averaged over seeds, and per seed):
    # (size, emergence, mirage)
    training: list[tuple[str, Emergence, MirageCheck | None]] = field(default_factory=list)


@dataclass
class TaskAnalysis:
    task: str
    chance: dict[str, float]
    answer_tokens: int | None
    runs: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    metrics: list[str]
    settings: list[SettingAnalysis]


def chance_levels(task_spec: str) -> tuple[dict[str, float], int | None]:
    """Chance level of each discrete metric, and the answer length in tokens (with
    ``<eos>``) when every answer has the same length."""
    task = task_from_spec(task_spec)
    rng = np.random.default_rng(0)
    samples = [task.sample(rng) for _ in range(32)]
    chance = {"exact_match": task.chance}
    if samples[0].choices:
        chance["choice_accuracy"] = 1.0 / len(samples[0].choices)
    lengths = {len(e.answer) for e in samples}
    return chance, (lengths.pop() + 1 if len(lengths) == 1 else None)


def _stats(values: list[float]) -> tuple[float, float, float, float]:
    """Mean, sample sd (0 for one value), min and max; NaN for none."""
    if not values:
        return (np.nan,) * 4
    v = np.asarray(values, dtype=float)
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return float(v.mean()), sd, float(v.min()), float(v.max())


def curves(checkpoints: list[dict[str, Any]], metrics: list[str]) -> list[Curve]:
    """Each setting's (data x steps) final checkpoints, aggregated over seeds per size."""
    finals = [c for c in checkpoints if c["step"] == c["steps"]]
    out = []
    for data, steps in sorted({(c["data"], c["steps"]) for c in finals}):
        rows = [c for c in finals if c["data"] == data and c["steps"] == steps]
        sizes = sorted({(c["n_params"], c["size"]) for c in rows})
        seed_ids = sorted({c["seed"] for c in rows})
        at = {(c["size"], c["seed"]): c for c in rows}
        mean, sd, lo, hi, by_seed = {}, {}, {}, {}, {}
        for m in metrics:
            stats = [
                _stats([c[m] for c in rows if c["size"] == s and c.get(m) is not None])
                for _, s in sizes
            ]
            mean[m], sd[m], lo[m], hi[m] = (
                np.array(col, dtype=float) for col in zip(*stats, strict=True)
            )
            by_seed[m] = {
                seed: np.array(
                    [
                        v if (v := at.get((s, seed), {}).get(m)) is not None else np.nan
                        for _, s in sizes
                    ],
                    dtype=float,
                )
                for seed in seed_ids
            }
        n = np.array([sum(1 for c in rows if c["size"] == s) for _, s in sizes])
        x = np.array([p for p, _ in sizes], dtype=float)
        out.append(
            Curve(
                data,
                steps,
                [s for _, s in sizes],
                x,
                mean,
                lo,
                hi,
                int(n.max()),
                sd,
                n,
                seed_ids,
                by_seed,
            )  # fmt: skip
        )
    return out


def analyse(con: sqlite3.Connection, task: str) -> TaskAnalysis:
    """Everything the report shows for one task of a results database."""
    runs = db.load_runs(con, task)
    if not runs:
        raise LmlabError(f"no finished runs of task {task!r} in this database")
    checkpoints = db.load_checkpoints(con, task)
    metrics = [m for m in METRICS if any(m in c for c in checkpoints)]
    chance, answer_tokens = chance_levels(task)
    settings = []
    for curve in curves(checkpoints, metrics):
        sa = SettingAnalysis(curve, None, "")
        x = curve.n_params
        if len(x) >= 3:
            try:
                sa.fit = fit_power_law(x, curve.mean["loss"])
            except LmlabError as e:
                sa.fit_note = str(e)
            if curve.seeds > 1:
                for seed, loss in curve.by_seed["loss"].items():
                    if np.isfinite(loss).all():
                        with contextlib.suppress(LmlabError):  # that seed has no fit
                            sa.seed_fits[seed] = fit_power_law(x, loss)
        else:
            sa.fit_note = f"{len(x)} model size(s); a power-law fit needs at least 3"
        if len(x) >= 2:
            for m in metrics:
                if METRICS[m].discrete:
                    sa.emergence.append(
                        emergence_across_seeds(
                            x, curve.by_seed[m], METRICS[m].label, chance.get(m, 0.0)
                        )
                    )
            for d, c in PAIRS:
                if d in metrics and c in metrics:
                    sa.mirage.append(
                        mirage_across_seeds(
                            x,
                            curve.by_seed[d],
                            curve.by_seed[c],
                            METRICS[d].label,
                            METRICS[c].label,
                            METRICS[c].higher_is_better,
                            chance.get(d, 0.0),
                            answer_tokens=answer_tokens if c == "token_accuracy" else None,
                        )
                    )
        sa.training = _along_training(checkpoints, curve, metrics, chance)
        settings.append(sa)
    return TaskAnalysis(task, chance, answer_tokens, runs, checkpoints, metrics, settings)


def _along_training(
    checkpoints: list[dict[str, Any]], curve: Curve, metrics: list[str], chance: dict[str, float]
) -> list[tuple[str, Emergence, MirageCheck | None]]:
    """The emergence detector and mirage check with training steps as the scale, per size
    (on the mean over seeds at each checkpoint, checked against each seed's own run)."""
    d = "choice_accuracy" if "choice_accuracy" in metrics else "exact_match"
    c = "brier" if d == "choice_accuracy" else "token_accuracy"
    out = []
    for size in curve.sizes:
        rows = [
            r
            for r in checkpoints
            if r["size"] == size and r["data"] == curve.data and r["steps"] == curve.steps
            and r["step"] > 0 and d in r and c in r
        ]  # fmt: skip
        steps = sorted({r["step"] for r in rows})
        if len(steps) < 2:
            continue
        at = {(r["seed"], r["step"]): r for r in rows}
        seeds = sorted({r["seed"] for r in rows})

        def per_seed(m: str, at=at, seeds=seeds, steps=steps) -> dict[int, list[float]]:
            return {
                seed: [at[seed, s][m] if (seed, s) in at else np.nan for s in steps]
                for seed in seeds
            }

        dy, cy = per_seed(d), per_seed(c)
        em = emergence_across_seeds(steps, dy, METRICS[d].label, chance.get(d, 0.0), scale="steps")
        mc = mirage_across_seeds(
            steps, dy, cy, METRICS[d].label, METRICS[c].label, METRICS[c].higher_is_better,
            chance.get(d, 0.0), scale="steps",
        )  # fmt: skip
        out.append((size, em, mc))
    return out
