"""Several seeds per size: aggregation, verdicts that say how many seeds agree, plots, report.

The synthetic tables below are written through the real results database (``write_run``)
and read back by the real analysis, so every number checked is hand-computed from them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lmlab.cli import build_parser
from lmlab.lab import plots
from lmlab.lab import results as db
from lmlab.lab.analysis import analyse
from lmlab.lab.emergence import emergence_across_seeds, mirage_across_seeds
from lmlab.lab.report import summary_markdown, write_report
from lmlab.lab.sweep import DEFAULT_SEEDS, plan, run_sweep
from lmlab.lab.trainer import RunResult, RunSpec

TASK = "add:digits=1"  # answers: 2 digits + <eos> = 3 tokens
SIZES = {"8x1": 1_000, "16x1": 10_000, "32x1": 100_000, "64x2": 1_000_000}  # made-up counts
# final exact match per seed: seeds 0 and 1 jump between 10k and 100k, seed 2 climbs gradually
EM = {
    0: [0.0, 0.0, 0.95, 1.0],
    1: [0.0, 0.02, 0.90, 0.99],
    2: [0.0, 0.30, 0.60, 0.95],
}
# per-token accuracy: seeds 0 and 1 jump with exact match (not a mirage), seed 2 is smooth
ACC = {
    0: [0.30, 0.30, 0.97, 1.0],
    1: [0.30, 0.35, 0.95, 0.99],
    2: [0.50, 0.70, 0.85, 0.99],
}


def _write(path: Path, em: dict[int, list[float]], acc: dict[int, list[float]], skip=()) -> None:
    """A results database with one run per size and seed (``skip``: (size, seed) left out)."""
    con = db.connect(path)
    for seed in em:
        for i, (size, n) in enumerate(SIZES.items()):
            if (size, seed) in skip:
                continue
            spec = RunSpec(task=TASK, size=size, data=60, steps=30, seed=seed)
            a = acc[seed][i]
            final = {"exact_match": em[seed][i], "token_accuracy": a, "edit_distance": 3 * (1 - a),
                     "answer_loglik": -5 * (1 - a), "loss": 1 / (i + 1) + 0.01 * seed}  # fmt: skip
            first = {k: 0.0 for k in final} | {"loss": 2.5, "token_accuracy": 0.1}
            evals = [
                {"step": 0, "tokens": 0, "compute": 0.0, **first},
                {"step": 30, "tokens": 30 * 16 * 7, "compute": 6.0 * n * 30 * 16 * 7, **final},
            ]
            db.write_run(con, RunResult(spec, n, 8, 1.0, evals))
    con.close()


@pytest.fixture
def three_seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.sqlite"
    _write(path, EM, ACC)
    return path


def _analysis(path: Path):
    con = db.connect(path, create=False)
    try:
        return analyse(con, TASK)
    finally:
        con.close()


def test_the_default_is_three_seeds() -> None:
    assert DEFAULT_SEEDS == (0, 1, 2)
    assert sorted({s.seed for s in plan("add", ["16x1"])}) == [0, 1, 2]
    args = build_parser().parse_args(["lab", "sweep", TASK])
    assert args.seeds == [0, 1, 2]
    assert build_parser().parse_args(["lab", "sweep", TASK, "--seeds", "4"]).seeds == [4]


def test_aggregation_over_seeds_matches_hand_computed_values(three_seeds: Path) -> None:
    (sa,) = _analysis(three_seeds).settings
    c = sa.curve
    assert c.sizes == list(SIZES) and c.seeds == 3 and c.seed_ids == [0, 1, 2]
    assert list(c.n) == [3, 3, 3, 3]
    # 16x1 (10k): exact match 0.0, 0.02, 0.30
    assert c.mean["exact_match"][1] == pytest.approx(0.32 / 3)
    m = 0.32 / 3
    sd = math.sqrt(((0 - m) ** 2 + (0.02 - m) ** 2 + (0.30 - m) ** 2) / 2)
    assert c.sd["exact_match"][1] == pytest.approx(sd)
    assert (c.lo["exact_match"][1], c.hi["exact_match"][1]) == pytest.approx((0.0, 0.30))
    # 32x1 (100k): per-token accuracy 0.97, 0.95, 0.85 -> mean 0.9233, sd 0.0643
    assert c.mean["token_accuracy"][2] == pytest.approx(0.9233333)
    assert c.sd["token_accuracy"][2] == pytest.approx(0.0642910, abs=1e-6)
    for seed in (0, 1, 2):
        assert list(c.by_seed["exact_match"][seed]) == pytest.approx(EM[seed])
    # the loss differs by 0.01 per seed: mean = seed 1, sd exactly 0.01
    assert c.mean["loss"] == pytest.approx(c.by_seed["loss"][1])
    assert c.sd["loss"] == pytest.approx([0.01] * 4)


def test_a_size_with_fewer_seeds_is_averaged_over_the_ones_it_has(tmp_path: Path) -> None:
    path = tmp_path / "gap.sqlite"
    _write(path, EM, ACC, skip={("32x1", 2)})
    (sa,) = _analysis(path).settings
    c = sa.curve
    assert list(c.n) == [3, 3, 2, 3]
    assert c.mean["exact_match"][2] == pytest.approx((0.95 + 0.90) / 2)
    assert c.sd["exact_match"][2] == pytest.approx(math.sqrt(2 * 0.025**2))
    assert math.isnan(c.by_seed["exact_match"][2][2])
    md = summary_markdown(_analysis(path))
    assert "2 to 3 seeds per size" in md and "| 32x1 | 100,000 | 2 |" in md


def test_verdicts_report_disagreeing_seeds(three_seeds: Path) -> None:
    a = _analysis(three_seeds)
    (sa,) = a.settings
    (em,) = sa.emergence
    # mean over seeds: 0, 0.1067, 0.8167, 0.98 -> 72% of the rise in one step: emergent
    assert em.kind == "emergent"
    assert em.seeds.kinds == {0: "emergent", 1: "emergent", 2: "gradual"}
    assert (em.seeds.agree, em.seeds.n) == (2, 3)
    assert "The seeds disagree: 2 of 3" in em.verdict
    assert "seeds 0 and 1: emergent; seed 2: gradual" in em.verdict
    # half of each seed's rise, on a log scale between 10k and 100k parameters:
    # seed 0 at 0.5 / 0.95 of the step, seed 2 at (0.475 - 0.3) / 0.3
    lo, hi = em.seeds.ranges["midpoint"]
    assert lo == pytest.approx(10 ** (4 + 0.5 / 0.95))
    assert hi == pytest.approx(10 ** (4 + 0.175 / 0.3))
    assert em.seeds.ranges["jump_share"] == pytest.approx((0.35 / 0.95, 0.95))
    assert "33.6k to 38.3k parameters" in em.verdict and "37% to 95%" in em.verdict

    acc = next(m for m in sa.mirage if m.continuous == "per-token accuracy")
    assert acc.kind == "real"
    assert acc.seeds.kinds == {0: "real", 1: "real", 2: "none"}
    assert "2 of 3" in acc.verdict and "seed 2: no jump" in acc.verdict
    # seeds 0 and 1 at their own jump: accuracy progress before 0 and 0.05 / 0.69,
    # within 0.67 / 0.70 and 0.60 / 0.69
    before, within = acc.seeds.ranges["before_share"], acc.seeds.ranges["jump_share"]
    assert before == pytest.approx((0.0, 0.05 / 0.69))
    assert within == pytest.approx((0.60 / 0.69, 0.67 / 0.70))
    assert "across the 2 seeds where exact match jumps" in acc.verdict
    # the seeds' own loss fits give a range of exponents
    assert len(sa.seed_fits) == 3 and "α ranges from" in summary_markdown(a)


def test_all_seeds_agreeing_and_no_seed_agreeing() -> None:
    x = [1e3, 1e4, 1e5, 1e6]
    same = emergence_across_seeds(x, {0: [0, 0, 0.95, 1], 1: [0, 0.01, 0.97, 1]})
    assert same.kind == "emergent" and same.seeds.unanimous
    assert "All 2 seeds agree" in same.verdict
    # each seed jumps all or nothing, at different sizes: the mean is gradual, no seed is
    split = emergence_across_seeds(x, {0: [0, 1, 1, 1], 1: [0, 0, 1, 1], 2: [0, 0, 0, 1]})
    assert split.kind == "gradual" and split.seeds.agree == 0
    assert "No single seed gives this verdict (seeds 0, 1 and 2: emergent)" in split.verdict
    assert split.seeds.label() == "gradual (0 of 3 seeds)"
    # the ranges cover only the seeds whose curve rises; a flat seed has no jump to place
    mixed = emergence_across_seeds(x, {0: [0, 0, 0.95, 1], 1: [0, 0.01, 0, 0.02]})
    assert mixed.seeds.kinds == {0: "emergent", 1: "flat"}
    mid = 10 ** (4 + 0.5 / 0.95)
    assert mixed.seeds.ranges["midpoint"] == pytest.approx((mid, mid))
    assert "Only seed 0 rises: it reaches half its rise at 33.6k parameters" in mixed.verdict
    one = emergence_across_seeds(x, {7: [0, 0, 0.95, 1]})
    assert "rests on one seed (seed 7)" in one.verdict and one.seeds.n == 1
    mc = mirage_across_seeds(x, {0: [0, 0, 0.95, 1]}, {0: [0.3, 0.6, 0.8, 1]})
    assert mc.kind == "mirage" and "rests on one seed (seed 0)" in mc.verdict
    with pytest.raises(ValueError, match="same seeds"):
        mirage_across_seeds(x, {0: [0, 0, 1, 1]}, {1: [0, 0, 1, 1]})


def test_one_seed_says_so(tmp_path: Path) -> None:
    path = tmp_path / "one.sqlite"
    _write(path, {0: EM[0]}, {0: ACC[0]})
    md = summary_markdown(_analysis(path))
    assert "(1 seed per size: seed 0)" in md and "One seed per size" in md
    assert md.count("rests on one seed (seed 0)") == 4  # emergence + three mirage checks
    assert "seed 0 |" not in md  # no per-seed table for one seed


def test_plots_show_the_mean_the_band_and_each_seed(three_seeds: Path, monkeypatch) -> None:
    a = _analysis(three_seeds)
    c = a.settings[0].curve
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or path)
    plots.metrics_vs_params(a, Path("unused.png"))
    ax = figs[0].axes[a.metrics.index("exact_match")]
    ys = [list(line.get_ydata()) for line in ax.get_lines()]
    assert list(c.mean["exact_match"]) in ys  # the mean line
    for seed in (0, 1, 2):  # each seed as its own faint dots
        (dots,) = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == EM[seed]]
        assert dots.get_alpha() < 0.5 and dots.get_linestyle() == "None"
    (band,) = ax.collections  # min to max over seeds
    verts = band.get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(1.0) and verts[:, 1].min() == pytest.approx(0.0)
    assert np.isclose(verts[:, 1], 0.30).any()  # 16x1's best seed bounds the band
    # along training: one line per size, the mean over seeds of each checkpoint
    figs.clear()
    plots.metrics_vs_step(a, Path("unused.png"))
    ax = figs[0].axes[a.metrics.index("exact_match")]
    assert len(ax.get_lines()) == len(SIZES)
    assert [ln.get_ydata()[-1] for ln in ax.get_lines()] == pytest.approx(c.mean["exact_match"])
    for fig in figs:
        plots.plt.close(fig)


def test_report_renders_a_real_sweep_with_several_seeds(tmp_path: Path) -> None:
    specs = plan(TASK, ["16x1", "32x1", "48x1"], data=[60], steps=[20],
                 n_test=20, evals=2, batch_size=16, warmup=5)  # fmt: skip
    assert len(specs) == 9  # three sizes x the default three seeds
    run_sweep(specs, tmp_path / "s.sqlite", workers=1, threads=1, progress=False)
    page = write_report(tmp_path / "s.sqlite", tmp_path / "rep")
    html = page.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 5
    assert "3 seeds per size" in html and "3 seed(s)" in html
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "| seed 0 | seed 1 | seed 2 | mean ± sd | min–max |" in md
    assert md.count("| 16x1 | exact match |") == 1
    verdicts = [ln for ln in md.splitlines() if ln.startswith("- ")]
    assert len(verdicts) >= 5
    for v in verdicts[:-1]:  # every emergence and mirage verdict says what the seeds did
        assert any(p in v for p in ("All 3 seeds agree", "The seeds disagree", "No single seed"))
    assert "α ranges from" in verdicts[-1] or "Scaling: no fit" in verdicts[-1]
    assert "seeds) |" in md  # the training table: kind (k of 3 seeds)
    assert "<table>" in html and html.count("<table>") == 3  # final, per seed, along training
