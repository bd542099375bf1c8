"""Power-law fit on synthetic points with a known exponent; emergence and mirage verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.errors import LmlabError
from lmlab.lab.emergence import detect_emergence, mirage_check
from lmlab.lab.scaling import fit_power_law

N = np.array([3e3, 1e4, 3e4, 1e5, 3e5, 1e6])


@pytest.mark.parametrize(
    ("a", "alpha", "c"), [(8.0, 0.3, 0.5), (50.0, 0.7, 0.2), (3.0, 0.076, 1.69)]
)
def test_power_law_recovers_known_exponent(a: float, alpha: float, c: float) -> None:
    fit = fit_power_law(N, a * N**-alpha + c)
    assert fit.alpha == pytest.approx(alpha, rel=1e-3)
    assert fit.c == pytest.approx(c, rel=1e-3, abs=1e-3)
    assert fit.a == pytest.approx(a, rel=1e-2)
    assert fit.r2 > 0.9999 and fit.dof == 3


def test_power_law_with_noise_and_quality() -> None:
    rng = np.random.default_rng(0)
    clean = 8.0 * N**-0.3 + 0.5
    noisy = clean * (1 + 0.01 * rng.standard_normal(len(N)))
    fit = fit_power_law(N, noisy)
    assert fit.alpha == pytest.approx(0.3, abs=0.05)
    assert 0.99 < fit.r2 < 1.0
    assert fit.rmse == pytest.approx(np.sqrt(np.mean((fit.predict(N) - noisy) ** 2)))
    bad = fit_power_law(N, rng.uniform(1, 2, len(N)))  # no trend: a poor fit, and it says so
    assert bad.r2 < 0.9
    assert "α" in fit.describe() and "6 sizes" in fit.describe()
    with pytest.raises(LmlabError, match="at least 3"):
        fit_power_law([1e3, 1e4], [2.0, 1.0])


def test_emergence_detector() -> None:
    jump = detect_emergence(N, [0.0, 0.01, 0.02, 0.95, 0.99, 1.0])
    assert jump.kind == "emergent" and jump.emergent
    assert (jump.jump_from, jump.jump_to) == (3e4, 1e5)
    assert jump.jump_share > 0.9 and jump.width_decades < 0.6
    assert "Emergent" in jump.verdict and "30k" in jump.verdict and "100k" in jump.verdict
    gradual = detect_emergence(N, [0.0, 0.2, 0.4, 0.6, 0.8, 0.95])
    assert gradual.kind == "gradual" and gradual.jump_share < 0.5
    assert detect_emergence(N, [0.0, 0.01, 0.0, 0.02, 0.0, 0.01]).kind == "flat"
    assert detect_emergence(N, [0.95, 0.97, 1, 1, 1, 1]).kind == "solved"
    assert detect_emergence(N, [0.0, 0.0, 0.1, 0.5, 0.6, 0.7]).kind == "partial"
    # chance level: a two-choice task at 0.5 is "near chance", not half-way
    mc = detect_emergence(N, [0.5, 0.52, 0.5, 0.99, 1.0, 1.0], chance=0.5)
    assert mc.kind == "emergent" and mc.score_start == pytest.approx(0.0)


def test_mirage_check() -> None:
    acc = np.array([0.45, 0.6, 0.75, 0.9, 0.97, 0.995])
    em = np.array([0.0, 0.01, 0.03, 0.9, 0.96, 0.99])  # jumps where accuracy moves smoothly
    check = mirage_check(N, em, acc, token_accuracy=acc, answer_tokens=5)
    assert check.kind == "mirage"
    assert check.before_share > 0.5 and check.jump_share < 0.5
    assert check.predicted == pytest.approx(list(acc**5))
    assert "Mirage" in check.verdict and "power 5" in check.verdict
    real = mirage_check(N, em, [0.1, 0.1, 0.12, 0.95, 0.97, 0.98])
    assert real.kind == "real" and "Not a mirage" in real.verdict
    # a lower-is-better continuous metric (edit distance) that shrinks smoothly
    edit = mirage_check(N, em, [3.0, 2.4, 1.8, 0.6, 0.2, 0.05], higher_is_better=False)
    assert edit.kind == "mirage"
    none = mirage_check(N, [0.0, 0.2, 0.4, 0.6, 0.8, 0.95], acc)
    assert none.kind == "none"
