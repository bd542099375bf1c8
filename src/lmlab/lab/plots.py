"""Figures of a sweep (matplotlib, Agg): every metric against parameters, compute and
training step; the loss with its power-law fit; and the mirage picture, exact match next
to the continuous metrics on the same runs."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lmlab.lab.analysis import TaskAnalysis  # noqa: E402
from lmlab.lab.metrics import METRICS  # noqa: E402


def _grid(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _size_colors(sizes: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("viridis")
    return {s: cmap(i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}


def metrics_vs_params(a: TaskAnalysis, path: Path) -> Path:
    fig, axes = _grid(len(a.metrics))
    for ax, m in zip(axes, a.metrics, strict=True):
        for sa in a.settings:
            c = sa.curve
            ax.plot(c.n_params, c.mean[m], "o-", label=c.label)
            if c.seeds > 1:
                ax.fill_between(c.n_params, c.lo[m], c.hi[m], alpha=0.2)
        if m in a.chance:
            ax.axhline(a.chance[m], color="grey", ls=":", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_title(METRICS[m].label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{a.task}: final metrics against model size", fontsize=11)
    return _save(fig, path)


def _trajectories(a: TaskAnalysis, path: Path, xkey: str, xlabel: str) -> Path:
    sizes = [s for _, s in sorted({(c["n_params"], c["size"]) for c in a.checkpoints})]
    colors = _size_colors(sizes)
    fig, axes = _grid(len(a.metrics))
    runs = [
        r for _, _, r in sorted({(c["n_params"], c["seed"], c["run_id"]) for c in a.checkpoints})
    ]
    for ax, m in zip(axes, a.metrics, strict=True):
        seen = set()
        for rid in runs:
            pts = [c for c in a.checkpoints if c["run_id"] == rid and c[xkey] > 0 and m in c]
            if not pts:
                continue
            size = pts[0]["size"]
            label = f"{size} ({pts[0]['n_params']:,})" if size not in seen else None
            seen.add(size)
            ax.plot(
                [p[xkey] for p in pts],
                [p[m] for p in pts],
                ".-",
                color=colors[size],
                label=label,
                alpha=0.8,
            )
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(METRICS[m].label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, title="size (parameters)", title_fontsize=7)
    fig.suptitle(f"{a.task}: metrics along training, against {xlabel}", fontsize=11)
    return _save(fig, path)


def metrics_vs_compute(a: TaskAnalysis, path: Path) -> Path:
    return _trajectories(a, path, "compute", "compute (6·N·tokens, FLOPs)")


def metrics_vs_step(a: TaskAnalysis, path: Path) -> Path:
    return _trajectories(a, path, "step", "training step")


def loss_fit(a: TaskAnalysis, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for sa in a.settings:
        c = sa.curve
        (line,) = ax.plot(c.n_params, c.mean["loss"], "o", label=c.label)
        if sa.fit is not None:
            xs = np.geomspace(c.n_params.min() / 1.5, c.n_params.max() * 1.5, 100)
            ax.plot(xs, sa.fit.predict(xs), "-", color=line.get_color(), alpha=0.7,
                    label=f"{sa.fit.a:.3g}·N^-{sa.fit.alpha:.3f} + {sa.fit.c:.3f} (R² {sa.fit.r2:.3f})")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("test loss on answer tokens (nats)")
    ax.set_title(f"{a.task}: loss against parameters, L = a·N^-α + c", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, path)


def mirage(a: TaskAnalysis, path: Path) -> Path:
    """Exact match (left) beside the continuous metrics of the same runs (right)."""
    sa = max(a.settings, key=lambda s: (len(s.curve.n_params), s.curve.steps, s.curve.data))
    c = sa.curve
    discrete = "choice_accuracy" if "choice_accuracy" in a.metrics else "exact_match"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(c.n_params, c.mean[discrete], "o-", color="C3", lw=2, label=METRICS[discrete].label)
    if discrete == "exact_match" and a.answer_tokens:
        left.plot(c.n_params, c.mean["token_accuracy"] ** a.answer_tokens, "--", color="grey",
                  label=f"per-token accuracy^{a.answer_tokens}")  # fmt: skip
    left.axhline(a.chance.get(discrete, 0.0), color="grey", ls=":", lw=1, label="chance")
    left.set_ylim(-0.03, 1.03)
    left.set_title("discontinuous metric", fontsize=10)
    for m, color in (("token_accuracy", "C0"), ("answer_loglik", "C2"), ("edit_distance", "C1"), ("brier", "C4")):  # fmt: skip
        if m not in a.metrics:
            continue
        y = c.mean[m]
        span = np.nanmax(y) - np.nanmin(y)
        norm = (y - np.nanmin(y)) / span if span > 0 else np.zeros_like(y)
        if not METRICS[m].higher_is_better:
            norm = 1 - norm
        right.plot(c.n_params, norm, "o-", color=color,
                   label=f"{METRICS[m].label}: {y[0]:.3g} → {y[-1]:.3g}")  # fmt: skip
    right.set_ylim(-0.03, 1.03)
    right.set_title("continuous metrics on the same runs (0 = worst, 1 = best seen)", fontsize=10)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{a.task} ({c.label}): emergence or mirage?", fontsize=11)
    return _save(fig, path)


def all_figures(a: TaskAnalysis, out: Path, prefix: str = "") -> dict[str, Path]:
    """Every figure for one task, as ``{name: path}``."""
    out.mkdir(parents=True, exist_ok=True)
    figs = {
        "mirage": mirage,
        "params": metrics_vs_params,
        "compute": metrics_vs_compute,
        "step": metrics_vs_step,
        "loss_fit": loss_fit,
    }
    return {name: f(a, out / f"{prefix}{name}.png") for name, f in figs.items()}
