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

**Seeds.** One run per size is one draw: a small model that escapes a plateau with one
seed stays on it with another, so one seed can make a curve jump or sag between
neighbouring sizes. :func:`emergence_across_seeds` and :func:`mirage_across_seeds` give
the verdict on the mean over seeds and recompute it on every seed's own curve; the
verdict then says how many seeds agree, which disagree and how, and the range over seeds
of the key quantities (where half the rise is reached, the largest step's share, the
continuous metric's progress before and within the jump). With one seed it says the
verdict rests on one seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
    midpoint: float | None = None  # the scale where the curve first reaches half its rise
    seeds: SeedSpread | None = None  # set by emergence_across_seeds

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
    x50 = _crossing(log_x, s, lo + 0.5 * rise) if rise > 1e-9 else None
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
        None if x50 is None else float(10**x50),
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
    seeds: SeedSpread | None = None  # set by mirage_across_seeds


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


# ---------------------------------------------------------------------------------------
# Several seeds: the verdict on the seed mean, checked against every seed's own curve.

KIND_WORDS = {  # a verdict kind in words, for the seed sentences
    "emergent": "emergent",
    "gradual": "gradual",
    "partial": "partial",
    "flat": "flat",
    "solved": "already solved",
    "worse": "getting worse",
    "mirage": "a mirage",
    "real": "not a mirage",
    "unclear": "unclear",
    "none": "no jump",
}


@dataclass
class SeedSpread:
    """A verdict recomputed on each seed's own curve, beside the one on the seed mean."""

    kind: str  # the verdict on the mean over seeds
    kinds: dict[int, str]  # each seed's own verdict
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # min, max over seeds
    text: str = ""  # the plain-words sentence the verdict ends with

    @property
    def n(self) -> int:
        return len(self.kinds)

    @property
    def agree(self) -> int:
        """Seeds whose own curve gets the same verdict as the mean over seeds."""
        return sum(k == self.kind for k in self.kinds.values())

    @property
    def unanimous(self) -> bool:
        return self.n > 0 and self.agree == self.n

    def label(self) -> str:
        """Short form for tables, e.g. ``"emergent (2 of 3 seeds)"``."""
        if self.n <= 1:
            return f"{self.kind} (1 seed)" if self.n == 1 else self.kind
        return f"{self.kind} ({self.agree} of {self.n} seeds)"


def _seed_rows(x, ys: Mapping[int, object]) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Scales, seeds and a (seeds x scales) array of values (NaN where a seed has no run)."""
    x = np.asarray(x, dtype=float)
    seeds = sorted(ys)
    if not seeds:
        raise ValueError("need at least one seed")
    y = np.array([np.asarray(ys[s], dtype=float) for s in seeds]).reshape(len(seeds), -1)
    if y.shape[1] != len(x):
        raise ValueError(f"each seed needs {len(x)} values, one per scale")
    return x, seeds, y


def _seed_mean(y: np.ndarray) -> np.ndarray:
    ok = np.isfinite(y)
    total = np.where(ok, y, 0.0).sum(axis=0)
    count = ok.sum(axis=0)
    return np.divide(total, count, out=np.full(y.shape[1], np.nan), where=count > 0)


def _seeds_words(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return "seeds " + ", ".join(map(str, seeds[:-1])) + f" and {seeds[-1]}"


def _grouped(kinds: dict[int, str]) -> str:
    """``"seeds 0 and 2: emergent; seed 1: flat"``."""
    groups: dict[str, list[int]] = {}
    for seed, kind in sorted(kinds.items()):
        groups.setdefault(kind, []).append(seed)
    return "; ".join(f"{_seeds_words(ss)}: {KIND_WORDS.get(k, k)}" for k, ss in groups.items())


def _agreement(kind: str, kinds: dict[int, str], what: str = "verdict") -> str:
    n = len(kinds)
    if n == 0:
        return "No seed has a run at two scales, so no single seed's curve can be checked."
    if n == 1:
        (seed,) = kinds
        return f"This {what} rests on one seed (seed {seed})."
    agree = sum(k == kind for k in kinds.values())
    if agree == n:
        return (
            f"All {n} seeds agree: each seed's own curve gives the same {what} "
            f"({KIND_WORDS.get(kind, kind)})."
        )
    if agree == 0:
        return (
            f"No single seed gives this {what} ({_grouped(kinds)}): the mean blends runs "
            "that behave differently."
        )
    return f"The seeds disagree: {agree} of {n} seeds give this {what} ({_grouped(kinds)})."


def _range(values: list[float]) -> tuple[float, float] | None:
    v = [float(a) for a in values if a is not None and np.isfinite(a)]
    return (min(v), max(v)) if v else None


def emergence_across_seeds(
    x,
    ys: Mapping[int, object],
    metric: str = "exact match",
    chance: float = 0.0,
    perfect: float = 1.0,
    scale: str = "parameters",
) -> Emergence:
    """:func:`detect_emergence` on the mean over seeds (``ys``: seed -> one value per
    scale, NaN where that seed has no run), checked against each seed's own curve.

    The verdict ends with how many seeds agree and, over the seeds whose curve rises,
    the range of the scale where half the rise is reached and of the largest step's share;
    ``.seeds`` holds the per-seed kinds and those ranges."""
    x, seeds, y = _seed_rows(x, ys)
    mean = _seed_mean(y)
    ok = np.isfinite(mean)
    em = detect_emergence(x[ok], mean[ok], metric, chance, perfect, scale)
    per: dict[int, Emergence] = {}
    for seed, row in zip(seeds, y, strict=True):
        k = np.isfinite(row)
        if k.sum() >= 2:
            per[seed] = detect_emergence(x[k], row[k], metric, chance, perfect, scale)
    spread = SeedSpread(em.kind, {s: e.kind for s, e in per.items()})
    parts = [_agreement(em.kind, spread.kinds)]
    rising = {s: e for s, e in per.items() if e.kind in ("emergent", "gradual", "partial")}
    mids = _range([e.midpoint for e in rising.values()])
    shares = _range([e.jump_share for e in rising.values()])
    if mids is not None and shares is not None:
        spread.ranges = {"midpoint": mids, "jump_share": shares}
    if len(per) >= 2 and mids is not None and shares is not None:
        who = (
            f"across the {len(rising)} seeds whose {metric} rises"
            if len(rising) < len(per)
            else "across seeds"
        )
        if len(rising) == 1:
            (only,) = rising
            parts.append(
                f"Only seed {only} rises: it reaches half its rise at {_fmt_n(mids[0])} "
                f"{scale}, its largest step holding {shares[0]:.0%} of the rise."
            )
        else:
            mean_mid = f" (mean curve: {_fmt_n(em.midpoint)})" if em.midpoint else ""
            parts.append(
                f"Half of the rise is reached at {_fmt_n(mids[0])} to {_fmt_n(mids[1])} "
                f"{scale} {who}{mean_mid}; the largest single step holds {shares[0]:.0%} to "
                f"{shares[1]:.0%} of each seed's rise."
            )
    spread.text = " ".join(parts)
    em.seeds = spread
    em.verdict = f"{em.verdict} {spread.text}"
    return em


def mirage_across_seeds(
    x,
    discrete_ys: Mapping[int, object],
    continuous_ys: Mapping[int, object],
    discrete: str = "exact match",
    continuous: str = "per-token accuracy",
    higher_is_better: bool = True,
    chance: float = 0.0,
    scale: str = "parameters",
    answer_tokens: int | None = None,
) -> MirageCheck:
    """:func:`mirage_check` on the mean over seeds, checked against each seed's own curves
    (each seed at its own jump). ``answer_tokens``: compare exact match with the
    continuous metric to that power (pass it when the continuous metric is per-token
    accuracy). The verdict ends with how many seeds agree and, over the seeds whose
    discrete metric jumps, the range of the continuous metric's progress before and
    within the jump; ``.seeds`` holds them."""
    x, seeds, d = _seed_rows(x, discrete_ys)
    _, seeds_c, c = _seed_rows(x, continuous_ys)
    if seeds_c != seeds:
        raise ValueError("the discrete and the continuous metric need the same seeds")
    dm, cm = _seed_mean(d), _seed_mean(c)
    ok = np.isfinite(dm) & np.isfinite(cm)
    mc = mirage_check(
        x[ok], dm[ok], cm[ok], discrete, continuous, higher_is_better, chance, scale,
        token_accuracy=cm[ok] if answer_tokens else None, answer_tokens=answer_tokens,
    )  # fmt: skip
    per: dict[int, MirageCheck] = {}
    for seed, drow, crow in zip(seeds, d, c, strict=True):
        k = np.isfinite(drow) & np.isfinite(crow)
        if k.sum() >= 2:
            per[seed] = mirage_check(
                x[k], drow[k], crow[k], discrete, continuous, higher_is_better, chance, scale
            )
    spread = SeedSpread(mc.kind, {s: m.kind for s, m in per.items()})
    parts = [_agreement(mc.kind, spread.kinds)]
    jumping = [m for m in per.values() if m.kind != "none"]
    before = _range([m.before_share for m in jumping])
    within = _range([m.jump_share for m in jumping])
    if before is not None and within is not None:
        spread.ranges = {"before_share": before, "jump_share": within}
        if len(per) >= 2:
            who = (
                "across seeds"
                if len(jumping) == len(per)
                else f"across the {len(jumping)} seed{'s' if len(jumping) > 1 else ''} "
                f"where {discrete} jumps"
            )
            if len(jumping) == 1:
                parts.append(
                    f"In the one seed where {discrete} jumps, {continuous} had made "
                    f"{before[0]:.0%} of its progress before its jump and {within[0]:.0%} "
                    "within it."
                )
            else:
                parts.append(
                    f"Each seed at its own jump, {who}: {continuous} had made {before[0]:.0%} "
                    f"to {before[1]:.0%} of its progress before the jump and {within[0]:.0%} "
                    f"to {within[1]:.0%} within it."
                )
    spread.text = " ".join(parts)
    mc.seeds = spread
    mc.verdict = f"{mc.verdict} {spread.text}"
    return mc
