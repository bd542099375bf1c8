"""Extractive-QA scores: exact match and F1, as the official evaluation scripts compute them.

* **SQuAD v1.1** (``evaluate-v1.1.py``): lower-case, strip ASCII punctuation, drop the
  articles *a/an/the*, collapse whitespace; EM is equality of the normalised strings, F1 the
  harmonic mean of precision and recall of the bag of normalised words they share.
* **CMRC 2018** (``cmrc2018_evaluate.py``): lower-case, drop CMRC's punctuation list (ASCII
  ``- : _ * ^ / \\ ~ ` + =`` and the Chinese marks), and segment the rest into Chinese
  characters one by one while runs of other characters (English words, numbers) stay whole;
  F1 is computed from the *longest common substring* of the two segment lists (not a bag of
  words), EM is equality after dropping the punctuation. The official script splits the
  non-Chinese runs with NLTK's ``word_tokenize``; here a regex does (words, numbers with inner
  ``.``/``,``, each other mark alone), which agrees on the words and numbers answers hold.

Each question is scored against its best reference (the maximum over references), and the
data set's score is the mean over questions, times 100. :func:`score_answers` adds a 95%
bootstrap interval (resampling questions).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --- SQuAD v1.1 ---------------------------------------------------------------------------

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_normalize(s: str) -> str:
    """SQuAD's ``normalize_answer``: lower, no punctuation, no articles, single spaces."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def squad_em(prediction: str, reference: str) -> float:
    return float(squad_normalize(prediction) == squad_normalize(reference))


def squad_f1(prediction: str, reference: str) -> float:
    pred = squad_normalize(prediction).split()
    ref = squad_normalize(reference).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


# --- CMRC 2018 ----------------------------------------------------------------------------

# cmrc2018_evaluate.py's sp_char (its '……' entry is two characters and never matches one).
CMRC_PUNCT = set("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
_CJK = re.compile(r"[\u4e00-\u9fa5]")
_WORDS = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:'[^\W\d_]+)?|\w+|[^\w\s]")


def cmrc_segments(s: str, remove_punct: bool = True) -> list[str]:
    """CMRC's ``mixed_segmentation``: Chinese characters one by one, other runs as words."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.extend(_WORDS.findall("".join(run)))
            run.clear()

    for ch in s.lower().strip():
        if remove_punct and ch in CMRC_PUNCT:
            continue
        if _CJK.match(ch) or ch in CMRC_PUNCT:
            flush()
            out.append(ch)
        else:
            run.append(ch)
    flush()
    return out


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous run of ``a`` and ``b`` (CMRC's ``find_lcs``)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def cmrc_f1(prediction: str, reference: str) -> float:
    ref, pred = cmrc_segments(reference), cmrc_segments(prediction)
    common = _longest_common_run(ref, pred)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _cmrc_strip(s: str) -> str:
    return "".join(ch for ch in s.lower().strip() if ch not in CMRC_PUNCT)


def cmrc_em(prediction: str, reference: str) -> float:
    return float(_cmrc_strip(prediction) == _cmrc_strip(reference))


# --- scoring a data set -------------------------------------------------------------------

METRICS: dict[str, tuple[Callable[[str, str], float], Callable[[str, str], float]]] = {
    "squad": (squad_em, squad_f1),
    "cmrc": (cmrc_em, cmrc_f1),
}


def metric_for(language: str) -> str:
    """The official metric of a language's benchmark: CMRC's for Chinese, else SQuAD's."""
    return "cmrc" if language == "zh" else "squad"


def best_over(fn: Callable[[str, str], float], prediction: str, references: Sequence[str]) -> float:
    return max((fn(prediction, r) for r in references), default=0.0)


@dataclass
class QAReport:
    """EM and F1 (0-100) over ``n`` questions, with 95% bootstrap intervals."""

    metric: str
    em: float
    f1: float
    n: int
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    per_question: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "n": self.n, "em": self.em, "f1": self.f1,
            "em_ci95": list(self.intervals.get("em", ())),
            "f1_ci95": list(self.intervals.get("f1", ())),
        }  # fmt: skip

    def format(self) -> str:
        ci = self.intervals

        def one(name: str, v: float) -> str:
            k = name.lower()
            return f"{name} {v:.2f}" + (
                f" (95% CI {ci[k][0]:.2f}-{ci[k][1]:.2f})" if k in ci else ""
            )

        return (
            f"{one('EM', self.em)}   {one('F1', self.f1)}   n = {self.n:,}   ({self.metric} metric)"
        )


def score_answers(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    metric: str = "squad",
    n_boot: int = 1000,
    seed: int = 0,
) -> QAReport:
    """EM/F1 of ``predictions`` against each question's references (best reference counts)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} questions")
    em_fn, f1_fn = METRICS[metric]
    em = np.array([best_over(em_fn, p, r) for p, r in zip(predictions, references, strict=True)])
    f1 = np.array([best_over(f1_fn, p, r) for p, r in zip(predictions, references, strict=True)])
    n = len(em)
    intervals: dict[str, tuple[float, float]] = {}
    if n_boot and n:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_boot, n))
        for name, v in (("em", em), ("f1", f1)):
            lo, hi = np.quantile(v[idx].mean(axis=1), [0.025, 0.975])
            intervals[name] = (float(100 * lo), float(100 * hi))
    per = [{"em": float(a), "f1": float(b)} for a, b in zip(em, f1, strict=True)]
    mean = lambda v: float(100 * v.mean()) if n else 0.0  # noqa: E731
    return QAReport(metric, mean(em), mean(f1), n, intervals, per)
