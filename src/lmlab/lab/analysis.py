"""From a results database to numbers and verdicts: curves over scale, fits, emergence.

Runs are grouped by *setting* (training problems x steps). Within a setting, each model
size's final checkpoint is averaged over seeds, giving one curve per metric against
parameters; the loss curve gets the power-law fit, the discrete metrics the emergence
detector, and each discrete/continuous pair the mirage check.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmlab.errors import LmlabError
from lmlab.lab import results as db
from lmlab.lab.emergence import Emergence, MirageCheck, detect_emergence, mirage_check
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
    """One setting's final metrics against parameters (means over seeds; min and max)."""

    data: int
    steps: int
    sizes: list[str]
    n_params: np.ndarray
    mean: dict[str, np.ndarray]
    lo: dict[str, np.ndarray]
    hi: dict[str, np.ndarray]
    seeds: int

    @property
    def label(self) -> str:
        return f"{self.data:,} problems, {self.steps:,} steps"


@dataclass
class SettingAnalysis:
    curve: Curve
    fit: PowerLawFit | None
    fit_note: str
    emergence: list[Emergence] = field(default_factory=list)
    mirage: list[MirageCheck] = field(default_factory=list)
    # along training, per size (checkpoints averaged over seeds): (size, emergence, mirage)
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


def _curves(checkpoints: list[dict[str, Any]], metrics: list[str]) -> list[Curve]:
    finals = [c for c in checkpoints if c["step"] == c["steps"]]
    out = []
    for data, steps in sorted({(c["data"], c["steps"]) for c in finals}):
        rows = [c for c in finals if c["data"] == data and c["steps"] == steps]
        sizes = sorted({(c["n_params"], c["size"]) for c in rows})
        mean, lo, hi = {}, {}, {}
        for m in metrics:
            vals = [
                [c[m] for c in rows if c["size"] == s and c.get(m) is not None] for _, s in sizes
            ]
            mean[m] = np.array([np.mean(v) if v else np.nan for v in vals])
            lo[m] = np.array([np.min(v) if v else np.nan for v in vals])
            hi[m] = np.array([np.max(v) if v else np.nan for v in vals])
        seeds = max(sum(1 for c in rows if c["size"] == s) for _, s in sizes)
        n = np.array([p for p, _ in sizes], dtype=float)
        out.append(Curve(data, steps, [s for _, s in sizes], n, mean, lo, hi, seeds))
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
    for curve in _curves(checkpoints, metrics):
        sa = SettingAnalysis(curve, None, "")
        x = curve.n_params
        if len(x) >= 3:
            try:
                sa.fit = fit_power_law(x, curve.mean["loss"])
            except LmlabError as e:
                sa.fit_note = str(e)
        else:
            sa.fit_note = f"{len(x)} model size(s); a power-law fit needs at least 3"
        if len(x) >= 2:
            for m in metrics:
                if METRICS[m].discrete:
                    sa.emergence.append(
                        detect_emergence(x, curve.mean[m], METRICS[m].label, chance.get(m, 0.0))
                    )
            for d, c in PAIRS:
                if d in metrics and c in metrics:
                    sa.mirage.append(
                        mirage_check(
                            x,
                            curve.mean[d],
                            curve.mean[c],
                            METRICS[d].label,
                            METRICS[c].label,
                            METRICS[c].higher_is_better,
                            chance.get(d, 0.0),
                            token_accuracy=curve.mean[c] if c == "token_accuracy" else None,
                            answer_tokens=answer_tokens if c == "token_accuracy" else None,
                        )
                    )
        sa.training = _along_training(checkpoints, curve, metrics, chance)
        settings.append(sa)
    return TaskAnalysis(task, chance, answer_tokens, runs, checkpoints, metrics, settings)


def _along_training(
    checkpoints: list[dict[str, Any]], curve: Curve, metrics: list[str], chance: dict[str, float]
) -> list[tuple[str, Emergence, MirageCheck | None]]:
    """The emergence detector and mirage check with training steps as the scale, per size."""
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
        dy = [np.mean([r[d] for r in rows if r["step"] == s]) for s in steps]
        cy = [np.mean([r[c] for r in rows if r["step"] == s]) for s in steps]
        em = detect_emergence(steps, dy, METRICS[d].label, chance.get(d, 0.0), scale="steps")
        mc = mirage_check(
            steps, dy, cy, METRICS[d].label, METRICS[c].label, METRICS[c].higher_is_better,
            chance.get(d, 0.0), scale="steps",
        )  # fmt: skip
        out.append((size, em, mc))
    return out
