"""Emergence detector and mirage check, with verdicts in plain words.

**Emergence** (Wei et al. 2022): a metric near chance for small models that jumps to near
perfect in larger ones. :func:`detect_emergence` rescales a metric to a score ``s`` from
chance (0) to perfect (1) and reports where it starts and ends, the step between
neighbouring scales where it rises most, that step's share of the whole rise, and the
width in decades of scale over which it climbs from 10% to 90% of its range. It calls the
curve *emergent* when it starts near chance (s <= 0.1), ends near perfect (s >= 0.9), and
at least half of the rise happens between two neighbouring scales.

**Mirage** (Schaeffer et al. 2023): the same runs scored with a continuous metric. If
per-token accuracy or the answer's log-likelihood had already made a good part of its
progress before the exact-match jump, and gains little more in the jump interval than
elsewhere, the jump is the all-or-nothing metric's doing, not a sudden new ability.
:func:`mirage_check` measures exactly that, and also compares exact match with what
independent per-token successes predict (per-token accuracy to the power of the answer
length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOW, HIGH, SHARP_SHARE = 0.1, 0.9, 0.5
_GROWTH = {"parameters": "model size", "steps": "training", "FLOPs": "compute"}


def _fmt_n(x: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def _crossing(log_x: np.ndarray, s: np.ndarray, level: float) -> float | None:
    """First log-x where the piecewise-linear curve ``s`` reaches ``level``."""
    for i in range(len(s)):
        if s[i] >= level:
            if i == 0:
                return float(log_x[0])
            f = (level - s[i - 1]) / (s[i] - s[i - 1])
            return float(log_x[i - 1] + f * (log_x[i] - log_x[i - 1]))
    return None


@dataclass
class Emergence:
    metric: str
    kind: str  # emergent | gradual | partial | flat | solved | worse
    start: float  # the metric's value at the smallest scale
    end: float  # ... at the largest
    score_start: float  # the same rescaled from chance (0) to perfect (1)
    score_end: float
    jump_from: float  # the neighbouring scales with the largest rise
    jump_to: float
    jump_share: float  # share of the whole rise in that one step
    width_decades: float | None  # log10 scale from 10% to 90% of the rise
    verdict: str

    @property
    def emergent(self) -> bool:
        return self.kind == "emergent"


def detect_emergence(
    x,
    y,
    metric: str = "exact match",
    chance: float = 0.0,
    perfect: float = 1.0,
    scale: str = "parameters",
) -> Emergence:
    """Is ``y`` (a score where higher is better, e.g. exact match) emergent in ``x``?"""
    order = np.argsort(np.asarray(x, dtype=float))
    x = np.asarray(x, dtype=float)[order]
    y = np.asarray(y, dtype=float)[order]
    if len(x) < 2:
        raise ValueError("need at least two scales")
    s = np.clip((y - chance) / (perfect - chance), 0.0, 1.0)
    log_x = np.log10(x)
    steps = np.diff(s)
    i = int(np.argmax(steps))
    rise = float(s.max() - s[: int(np.argmax(s)) + 1].min())
    share = float(steps[i] / rise) if rise > 1e-9 else 0.0
    lo = float(s[: int(np.argmax(s)) + 1].min())
    x10 = _crossing(log_x, s, lo + 0.1 * rise) if rise > 1e-9 else None
    x90 = _crossing(log_x, s, lo + 0.9 * rise) if rise > 1e-9 else None
    width = None if x10 is None or x90 is None else x90 - x10
    a, b = _fmt_n(x[i]), _fmt_n(x[i + 1])
    span = f"from {y[0]:.2f} at {_fmt_n(x[0])} to {y[-1]:.2f} at {_fmt_n(x[-1])} {scale}"
    if s[0] >= HIGH:
        kind = "solved"
        verdict = f"{metric} is already near perfect at the smallest scale ({span})."
    elif s.max() <= LOW:
        kind = "flat"
        verdict = (
            f"{metric} stays near chance throughout ({span}): no ability appears "
            "in this range; try larger models, more steps or more data."
        )
    elif s[-1] < s[0] - LOW:
        kind = "worse"
        verdict = f"{metric} gets worse with scale ({span})."
    elif s[0] <= LOW and s.max() >= HIGH and share >= SHARP_SHARE:
        kind = "emergent"
        verdict = (
            f"Emergent: {metric} is near chance up to {a} {scale} and near perfect "
            f"by {b if s[i + 1] >= HIGH else _fmt_n(x[int(np.argmax(s >= HIGH))])} ({span}); "
            f"{share:.0%} of the whole rise happens between {a} and {b}"
            + (
                f", a climb from 10% to 90% within {width:.2f} decades."
                if width is not None
                else "."
            )
        )
    elif s[0] <= LOW and s.max() >= HIGH:
        kind = "gradual"
        verdict = (
            f"Gradual: {metric} climbs from near chance to near perfect ({span}), spread "
            f"over {width:.2f} decades of {scale}; the largest single step ({a} to {b}) "
            f"holds only {share:.0%} of the rise."
        )
    else:
        kind = "partial"
        verdict = (
            f"Partial: {metric} rises ({span}) but "
            + ("does not reach near perfect" if s.max() < HIGH else "does not start near chance")
            + f"; its largest step ({a} to {b}) holds {share:.0%} of the rise."
        )
    return Emergence(
        metric, kind, float(y[0]), float(y[-1]), float(s[0]), float(s[-1]),
        float(x[i]), float(x[i + 1]), share, width, verdict,
    )  # fmt: skip


@dataclass
class MirageCheck:
    discrete: str
    continuous: str
    kind: str  # mirage | real | none
    before_share: float  # continuous progress made before the discrete jump began
    jump_share: float  # continuous progress made within the discrete jump interval
    predicted: list[float] | None  # exact match predicted by accuracy ** answer length
    verdict: str


def progress(y, higher_is_better: bool = True) -> np.ndarray:
    """A metric rescaled to its own progress: 0 at the first point, 1 at its best."""
    y = np.asarray(y, dtype=float)
    y = y if higher_is_better else -y
    best = float(y.max())
    span = best - float(y[0])
    return (y - y[0]) / span if span > 1e-12 else np.zeros_like(y)


def mirage_check(
    x,
    discrete_y,
    continuous_y,
    discrete: str = "exact match",
    continuous: str = "per-token accuracy",
    higher_is_better: bool = True,
    chance: float = 0.0,
    scale: str = "parameters",
    token_accuracy=None,
    answer_tokens: int | None = None,
) -> MirageCheck:
    """Does ``continuous_y`` improve smoothly where ``discrete_y`` jumps (see module doc)?"""
    order = np.argsort(np.asarray(x, dtype=float))
    x = np.asarray(x, dtype=float)[order]
    d = np.asarray(discrete_y, dtype=float)[order]
    c = np.asarray(continuous_y, dtype=float)[order]
    em = detect_emergence(x, d, discrete, chance, scale=scale)
    p = progress(c, higher_is_better)
    i = int(np.argmax(x >= em.jump_from))
    before, within = float(p[i]), float(p[i + 1] - p[i])
    predicted = None
    if token_accuracy is not None and answer_tokens:
        predicted = list(np.asarray(token_accuracy, dtype=float)[order] ** answer_tokens)
    a, b = _fmt_n(em.jump_from), _fmt_n(em.jump_to)
    if em.kind not in ("emergent", "gradual", "partial") or em.jump_share < SHARP_SHARE:
        kind = "none"
        verdict = (
            f"No jump to explain: {discrete} does not rise sharply ({em.kind}); "
            f"{continuous} reaches {_share_words(p)}."
        )
    elif before >= 0.25 and within < SHARP_SHARE:
        kind = "mirage"
        verdict = (
            f"Mirage: {discrete} jumps between {a} and {b} {scale}, but {continuous} had "
            f"already made {before:.0%} of its progress before that and gains only "
            f"{within:.0%} in the jump interval. The ability improves steadily with "
            f"{_GROWTH.get(scale, scale)}; "
            f"the jump comes from scoring an answer all-or-nothing."
        )
    elif within >= SHARP_SHARE:
        kind = "real"
        verdict = (
            f"Not a mirage: {continuous} also jumps between {a} and {b} {scale} "
            f"({within:.0%} of its progress in that interval), so the ability itself "
            "appears abruptly, not only the metric."
        )
    else:
        kind = "unclear"
        verdict = (
            f"Unclear: {discrete} jumps between {a} and {b} {scale}; {continuous} made "
            f"{before:.0%} of its progress before and {within:.0%} within that interval."
        )
    if predicted is not None and kind != "none":
        gap = float(np.mean(np.abs(np.asarray(predicted) - d)))
        verdict += (
            f" Per-token accuracy to the power {answer_tokens} predicts exact match within "
            f"{gap:.2f} on average"
            + (" (errors act like independent per-token misses)." if gap < 0.1 else ".")
        )
    return MirageCheck(discrete, continuous, kind, before, within, predicted, verdict)


def _share_words(p: np.ndarray) -> str:
    return f"{float(p[-1]):.0%} of its best value at the end of the range"
