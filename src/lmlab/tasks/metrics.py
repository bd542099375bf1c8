"""Classification metrics: accuracy, macro-F1 with 95% bootstrap intervals, per-class
precision/recall/F1, and the confusion matrix (rows: true class, columns: predicted).

Macro-F1 averages the per-class F1 over the classes that occur among the true labels or the
predictions (as scikit-learn does by default); a class's F1 is ``2 TP / (2 TP + FP + FN)``,
the harmonic mean of its precision and recall.

The bootstrap resamples the test examples with replacement. Since every metric here is a
function of the confusion matrix, resampling examples is the same as drawing the matrix's
cells from a multinomial with the observed cell frequencies, which takes one numpy call for
all resamples. The interval is the 2.5th to 97.5th percentile over ``n_boot`` resamples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"{t.shape[0]} true labels but {p.shape[0]} predictions")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def _scores(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 of one (C, C) or many (B, C, C) confusion matrices."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    true = cm.sum(axis=-1)
    pred = cm.sum(axis=-2)
    n = cm.sum(axis=(-2, -1))
    acc = np.divide(tp.sum(axis=-1), n, out=np.zeros_like(n), where=n > 0)
    denom = true + pred
    present = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(denom), where=present)
    k = present.sum(axis=-1)
    macro = np.divide(f1.sum(axis=-1), k, out=np.zeros_like(n), where=k > 0)
    return acc, macro


def accuracy(y_true, y_pred) -> float:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float((t == p).mean()) if len(t) else 0.0


def macro_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    c = n_classes or int(max(t.max(initial=0), p.max(initial=0)) + 1)
    return float(_scores(confusion_matrix(t, p, c))[1])


def bootstrap_intervals(
    cm: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of accuracy and macro-F1 over ``n_boot`` resamples of the
    examples behind confusion matrix ``cm``."""
    cm = np.asarray(cm, dtype=np.int64)
    n = int(cm.sum())
    if n == 0:
        return {"accuracy": (0.0, 0.0), "macro_f1": (0.0, 0.0)}
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, cm.ravel() / n, size=n_boot).reshape(n_boot, *cm.shape)
    acc, macro = _scores(draws)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    return {
        "accuracy": tuple(float(x) for x in np.quantile(acc, q)),
        "macro_f1": tuple(float(x) for x in np.quantile(macro, q)),
    }  # type: ignore[return-value]


@dataclass
class Report:
    """Everything ``lmlab task eval`` prints and ``results.json`` keeps for one split."""

    labels: list[str]
    confusion: np.ndarray
    accuracy: float
    macro_f1: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    loss: float | None = None

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    def per_class(self) -> list[dict[str, Any]]:
        cm = self.confusion
        out = []
        for i, name in enumerate(self.labels):
            tp, true, pred = int(cm[i, i]), int(cm[i].sum()), int(cm[:, i].sum())
            p = tp / pred if pred else 0.0
            r = tp / true if true else 0.0
            f = 2 * tp / (true + pred) if true + pred else 0.0
            out.append(
                {"label": name, "precision": p, "recall": r, "f1": f, "support": true, "predicted": pred}
            )  # fmt: skip
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_ci95": list(self.intervals.get("accuracy", ())),
            "macro_f1": self.macro_f1,
            "macro_f1_ci95": list(self.intervals.get("macro_f1", ())),
            **({"loss": self.loss} if self.loss is not None else {}),
            "per_class": self.per_class(),
            "labels": list(self.labels),
            "confusion": self.confusion.tolist(),
        }

    def format(self) -> str:
        """A few lines for the terminal: headline scores, then one row per class."""
        ci = self.intervals
        lines = [
            f"accuracy {self.accuracy:.4f}"
            + (f" (95% CI {ci['accuracy'][0]:.4f}-{ci['accuracy'][1]:.4f})" if ci else "")
            + f"   macro-F1 {self.macro_f1:.4f}"
            + (f" (95% CI {ci['macro_f1'][0]:.4f}-{ci['macro_f1'][1]:.4f})" if ci else "")
            + f"   n = {self.n:,}"
        ]
        width = max(8, *(len(n) for n in self.labels))
        lines.append(f"  {'class':<{width}}  precision  recall     F1   support")
        for row in self.per_class():
            lines.append(
                f"  {row['label']:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
                f"{row['f1']:.4f}  {row['support']:8,}"
            )
        return "\n".join(lines)


def evaluate_predictions(
    y_true, y_pred, labels: list[str], n_boot: int = 1000, seed: int = 0, loss: float | None = None
) -> Report:
    cm = confusion_matrix(y_true, y_pred, len(labels))
    acc, macro = _scores(cm)
    intervals = bootstrap_intervals(cm, n_boot, seed) if n_boot else {}
    return Report(list(labels), cm, float(acc), float(macro), intervals, loss)
