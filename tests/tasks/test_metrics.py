"""Classification metrics against hand-computed cases and scikit-learn; bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.tasks.metrics import (
    accuracy,
    bootstrap_intervals,
    confusion_matrix,
    evaluate_predictions,
    macro_f1,
)

# Three classes, six examples:
#   class 0: true at 0, 1; predicted at 0, 5    -> TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 1/2
#   class 1: true at 2, 3; predicted at 1, 2, 3 -> TP 2, FP 1, FN 0 -> P 2/3, R 1,   F1 4/5
#   class 2: true at 4, 5; predicted at 4       -> TP 1, FP 0, FN 1 -> P 1,   R 1/2, F1 2/3
Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0]


def test_hand_computed_case() -> None:
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    rows = evaluate_predictions(Y_TRUE, Y_PRED, ["a", "b", "c"], n_boot=0).per_class()
    assert [r["precision"] for r in rows] == pytest.approx([1 / 2, 2 / 3, 1])
    assert [r["recall"] for r in rows] == pytest.approx([1 / 2, 1, 1 / 2])
    assert [r["f1"] for r in rows] == pytest.approx([1 / 2, 4 / 5, 2 / 3])
    assert [r["support"] for r in rows] == [2, 2, 2]


def test_absent_class_is_left_out_of_the_macro_average() -> None:
    # Class 2 is neither true nor predicted: averaged over classes 0 and 1 only (as sklearn).
    assert macro_f1([0, 1, 1], [0, 1, 0], n_classes=3) == pytest.approx((2 / 3 + 2 / 3) / 2)
    # A class predicted but never true counts, with F1 0.
    assert macro_f1([0, 0], [0, 1], n_classes=2) == pytest.approx((2 / 3 + 0) / 2)


def test_matches_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for c in (2, 4, 10):
        t = rng.integers(0, c, 500)
        p = np.where(rng.random(500) < 0.6, t, rng.integers(0, c, 500))
        assert macro_f1(t, p, c) == pytest.approx(sk.f1_score(t, p, average="macro"))
        assert accuracy(t, p) == pytest.approx(sk.accuracy_score(t, p))
        assert (confusion_matrix(t, p, c) == sk.confusion_matrix(t, p, labels=range(c))).all()
        rows = evaluate_predictions(t, p, [str(i) for i in range(c)], n_boot=0).per_class()
        prec, rec, f1, sup = sk.precision_recall_fscore_support(t, p, labels=range(c))
        assert [r["precision"] for r in rows] == pytest.approx(prec)
        assert [r["recall"] for r in rows] == pytest.approx(rec)
        assert [r["f1"] for r in rows] == pytest.approx(f1)


def test_bootstrap_interval_properties() -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, 400)
    p = np.where(rng.random(400) < 0.7, t, rng.integers(0, 3, 400))
    cm = confusion_matrix(t, p, 3)
    r = evaluate_predictions(t, p, ["a", "b", "c"], n_boot=2000, seed=1)
    for name, point in (("accuracy", r.accuracy), ("macro_f1", r.macro_f1)):
        lo, hi = r.intervals[name]
        assert lo < point < hi
        assert hi - lo < 0.15
    # Seeded: the same interval again; another seed moves it only a little.
    assert bootstrap_intervals(cm, 2000, seed=1) == r.intervals
    other = bootstrap_intervals(cm, 2000, seed=2)["accuracy"]
    assert other == pytest.approx(r.intervals["accuracy"], abs=0.01)
    # Sixteen times the data (same proportions): about a quarter of the width.
    wide = np.subtract(*r.intervals["accuracy"][::-1])
    narrow = np.subtract(*bootstrap_intervals(cm * 16, 2000, seed=1)["accuracy"][::-1])
    assert 0.15 < narrow / wide < 0.35
    # The percentile interval of accuracy is close to the normal approximation's.
    acc = r.accuracy
    assert wide == pytest.approx(2 * 1.96 * np.sqrt(acc * (1 - acc) / 400), rel=0.15)
    # A higher level, a wider interval.
    lo90, hi90 = bootstrap_intervals(cm, 2000, seed=1, level=0.9)["accuracy"]
    assert hi90 - lo90 < wide


def test_bootstrap_of_perfect_predictions_is_a_point() -> None:
    r = evaluate_predictions([0, 1, 1, 0, 1], [0, 1, 1, 0, 1], ["n", "p"], n_boot=500)
    assert r.intervals == {"accuracy": (1.0, 1.0), "macro_f1": (1.0, 1.0)}


def test_report_text_and_dict() -> None:
    r = evaluate_predictions(Y_TRUE, Y_PRED, ["neg", "neu", "pos"], n_boot=200, loss=0.5)
    text = r.format()
    assert "accuracy 0.6667" in text and "macro-F1 0.6556" in text and "n = 6" in text
    assert text.splitlines()[2].split()[0] == "neg"
    d = r.to_dict()
    assert d["n"] == 6 and d["loss"] == 0.5 and len(d["accuracy_ci95"]) == 2
    assert d["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
