"""Figures of a sweep (matplotlib, Agg): every metric against parameters, compute and
training step; the loss with its power-law fit; and the mirage picture, exact match next
to the continuous metrics on the same runs.

With several seeds per size every curve is the mean over seeds, with a band from the
lowest to the highest seed and, against parameters, each seed's run as a faint dot: one
seed that escapes a plateau (or does not) shows as a dot away from the line, not as a
jagged curve."""

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


def _seed_dots(ax, x: np.ndarray, by_seed: dict[int, np.ndarray], color, transform=None) -> None:
    """Each seed's values as faint dots at the same x (nothing with one seed)."""
    if len(by_seed) < 2:
        return
    for ys in by_seed.values():
        ys = transform(ys) if transform is not None else ys
        ax.plot(x, ys, "o", color=color, alpha=0.3, ms=3.5, mew=0, zorder=1)


def metrics_vs_params(a: TaskAnalysis, path: Path) -> Path:
    fig, axes = _grid(len(a.metrics))
    for ax, m in zip(axes, a.metrics, strict=True):
        for sa in a.settings:
            c = sa.curve
            label = c.label + (f" (mean of {c.seeds} seeds)" if c.seeds > 1 else " (1 seed)")
            (line,) = ax.plot(c.n_params, c.mean[m], "o-", label=label, zorder=3)
            if c.seeds > 1:
                ax.fill_between(c.n_params, c.lo[m], c.hi[m], color=line.get_color(), alpha=0.2)
                _seed_dots(ax, c.n_params, c.by_seed[m], line.get_color())
        if m in a.chance:
            ax.axhline(a.chance[m], color="grey", ls=":", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_title(METRICS[m].label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{a.task}: final metrics against model size", fontsize=11)
    return _save(fig, path)


def trajectory_stats(
    a: TaskAnalysis, xkey: str, metric: str
) -> list[tuple[str, int, int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per size and setting: (size, data, steps, seeds, x, mean, min, max) of ``metric``
    over seeds at every checkpoint after step 0."""
    groups: dict[tuple, dict[int, list[tuple[float, float]]]] = {}
    for c in a.checkpoints:
        if c[xkey] > 0 and c.get(metric) is not None:
            key = (c["n_params"], c["size"], c["data"], c["steps"])
            groups.setdefault(key, {}).setdefault(c["step"], []).append((c[xkey], c[metric]))
    out = []
    for (_, size, data, steps), by_step in sorted(groups.items()):
        order = sorted(by_step)
        xs = np.array([np.mean([p[0] for p in by_step[s]]) for s in order])
        vals = [np.array([p[1] for p in by_step[s]], dtype=float) for s in order]
        seeds = max(len(v) for v in vals)
        out.append((
            size, data, steps, seeds, xs,
            np.array([v.mean() for v in vals]),
            np.array([v.min() for v in vals]),
            np.array([v.max() for v in vals]),
        ))  # fmt: skip
    return out


def _trajectories(a: TaskAnalysis, path: Path, xkey: str, xlabel: str) -> Path:
    sizes = [s for _, s in sorted({(c["n_params"], c["size"]) for c in a.checkpoints})]
    params = {c["size"]: c["n_params"] for c in a.checkpoints}
    colors = _size_colors(sizes)
    settings = sorted({(c["data"], c["steps"]) for c in a.checkpoints})
    styles = {st: ("-", "--", ":", "-.")[i % 4] for i, st in enumerate(settings)}
    fig, axes = _grid(len(a.metrics))
    for ax, m in zip(axes, a.metrics, strict=True):
        seen = set()
        for size, data, steps, seeds, xs, mean, lo, hi in trajectory_stats(a, xkey, m):
            label = f"{size} ({params[size]:,})" if size not in seen else None
            seen.add(size)
            ax.plot(xs, mean, marker=".", ls=styles[data, steps], color=colors[size],
                    label=label, alpha=0.9)  # fmt: skip
            if seeds > 1:
                ax.fill_between(xs, lo, hi, color=colors[size], alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(METRICS[m].label, fontsize=10)
        ax.grid(alpha=0.3)
    seeds_n = len({c["seed"] for c in a.checkpoints})
    title = "size (parameters)" + (f"; mean of {seeds_n} seeds" if seeds_n > 1 else "")
    axes[0].legend(fontsize=7, title=title, title_fontsize=7)
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
        label = c.label + (f" (mean of {c.seeds} seeds)" if c.seeds > 1 else "")
        (line,) = ax.plot(c.n_params, c.mean["loss"], "o", label=label, zorder=3)
        _seed_dots(ax, c.n_params, c.by_seed["loss"], line.get_color())
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
    several = c.seeds > 1
    left.plot(c.n_params, c.mean[discrete], "o-", color="C3", lw=2, zorder=3,
              label=METRICS[discrete].label + (f" (mean of {c.seeds} seeds)" if several else ""))  # fmt: skip
    if several:
        left.fill_between(c.n_params, c.lo[discrete], c.hi[discrete], color="C3", alpha=0.2)
        _seed_dots(left, c.n_params, c.by_seed[discrete], "C3")
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
        worst, best = np.nanmin(c.lo[m]), np.nanmax(c.hi[m])  # over every seed's run
        if not METRICS[m].higher_is_better:
            worst, best = best, worst
        span = best - worst

        def norm(v, worst=worst, span=span):
            return (v - worst) / span if span != 0 else np.zeros_like(v)

        right.plot(c.n_params, norm(y), "o-", color=color, zorder=3,
                   label=f"{METRICS[m].label}: {y[0]:.3g} → {y[-1]:.3g}")  # fmt: skip
        if several:
            right.fill_between(c.n_params, norm(c.lo[m]), norm(c.hi[m]), color=color, alpha=0.1)
            _seed_dots(right, c.n_params, c.by_seed[m], color, norm)
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
