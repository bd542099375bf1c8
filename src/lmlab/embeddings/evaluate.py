"""Intrinsic evaluation of word vectors: analogies and word similarity.

* Analogies (*a : b :: c : d*, Google's ``questions-words.txt`` or CA8): the answer is the word
  nearest ``b - a + c`` (3CosAdd) or the best 3CosMul score, searched among the ``restrict_vocab``
  most frequent words, the three question words excluded (as gensim's
  ``evaluate_word_analogies``). Questions with a word outside that vocabulary are skipped and
  reported as lost coverage; accuracy is over the questions answered.
* Similarity (WordSim-353, SimLex-999, wordsim-240): Spearman's rho between human scores and
  cosine similarities over the pairs whose words are both known; coverage reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmlab.embeddings.vectors import Vectors
from lmlab.errors import LmlabError

EN_ANALOGY = ("en/questions-words.txt",)
EN_SIMILARITY = ("en/EN-WS-353-ALL.txt", "en/EN-SIMLEX-999.txt")
ZH_ANALOGY = ("zh/CA8_morphological.txt", "zh/CA8_semantic.txt")
ZH_SIMILARITY = ("zh/wordsim-240.txt",)


@dataclass
class Section:
    name: str
    category: str  # "semantic" or "syntactic"
    correct: int = 0
    seen: int = 0  # questions answered (all four words known)
    total: int = 0  # questions in the file

    @property
    def accuracy(self) -> float:
        return self.correct / self.seen if self.seen else 0.0


@dataclass
class AnalogyResult:
    path: str
    method: str
    restrict_vocab: int
    sections: list[Section] = field(default_factory=list)

    def _sum(self, category: str | None) -> Section:
        s = Section(category or "total", category or "total")
        for sec in self.sections:
            if category is None or sec.category == category:
                s.correct, s.seen, s.total = (
                    s.correct + sec.correct,
                    s.seen + sec.seen,
                    s.total + sec.total,
                )
        return s

    @property
    def semantic(self) -> Section:
        return self._sum("semantic")

    @property
    def syntactic(self) -> Section:
        return self._sum("syntactic")

    @property
    def total(self) -> Section:
        return self._sum(None)

    @property
    def accuracy(self) -> float:
        return self.total.accuracy

    @property
    def coverage(self) -> float:
        t = self.total
        return t.seen / t.total if t.total else 0.0


@dataclass
class SimilarityResult:
    path: str
    spearman: float
    seen: int
    total: int

    @property
    def coverage(self) -> float:
        return self.seen / self.total if self.total else 0.0


def _read_lines(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise LmlabError(f"evaluation file {p} not found; check the path or LMLAB_SHARED_DATA")
    return p.read_text(encoding="utf-8-sig").splitlines()


def read_analogies(path: str | Path) -> list[tuple[Section, list[tuple[str, str, str, str]]]]:
    """``: section`` headers followed by ``a b c d`` lines."""
    default = "syntactic" if "morpholog" in Path(path).name.lower() else None
    out: list[tuple[Section, list[tuple[str, str, str, str]]]] = []
    for n, line in enumerate(_read_lines(path), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            name = line[1:].strip()
            cat = default or ("syntactic" if name.startswith("gram") else "semantic")
            out.append((Section(name, cat), []))
            continue
        parts = line.split()
        if len(parts) != 4:
            raise LmlabError(f"{path}:{n}: expected four words per analogy line, got {line!r}")
        if not out:
            out.append((Section("all", default or "semantic"), []))
        out[-1][1].append((parts[0], parts[1], parts[2], parts[3]))
    return out


def _lookup(vectors: Vectors, limit: int, lowercase: bool) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, w in enumerate(vectors.words[:limit]):
        index.setdefault(w.lower() if lowercase else w, i)  # the most frequent spelling wins
    return index


def evaluate_analogies(
    vectors: Vectors,
    path: str | Path,
    method: str = "add",
    restrict_vocab: int = 300_000,
    lowercase: bool = True,
    batch: int = 1024,
) -> AnalogyResult:
    """Accuracy per section on an analogy file (3CosAdd ``"add"`` or 3CosMul ``"mul"``)."""
    if method not in ("add", "mul"):
        raise LmlabError(f"unknown analogy method {method!r}; choose add or mul")
    n = min(restrict_vocab, len(vectors))
    index = _lookup(vectors, n, lowercase)
    unit = vectors.unit[:n]
    result = AnalogyResult(str(path), method, n)
    for section, questions in read_analogies(path):
        section.total = len(questions)
        norm = (lambda w: w.lower()) if lowercase else (lambda w: w)
        known = [[index[norm(w)] for w in q] for q in questions if all(norm(w) in index for w in q)]
        section.seen = len(known)
        ids = np.array(known, dtype=np.int64).reshape(-1, 4)
        for s in range(0, len(ids), batch):
            q = ids[s : s + batch]
            a, b, c = unit[q[:, 0]], unit[q[:, 1]], unit[q[:, 2]]
            if method == "add":
                scores = (b - a + c) @ unit.T
            else:
                sim = lambda x: (1.0 + x @ unit.T) / 2.0  # noqa: E731
                scores = sim(b) * sim(c) / (sim(a) + 1e-6)
            rows = np.arange(len(q))
            for k in range(3):
                scores[rows, q[:, k]] = -np.inf
            section.correct += int((scores.argmax(axis=1) == q[:, 3]).sum())
        result.sections.append(section)
    return result


def read_similarity(path: str | Path) -> list[tuple[str, str, float]]:
    """``w1 w2 score`` lines (tab or space separated); a header line without a number is skipped."""
    pairs = []
    for n, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            pairs.append((parts[0], parts[1], float(parts[2])))
        except (IndexError, ValueError) as e:
            if n == 1:
                continue
            raise LmlabError(f"{path}:{n}: expected 'word word score', got {line!r}") from e
    return pairs


def evaluate_similarity(
    vectors: Vectors, path: str | Path, lowercase: bool = True
) -> SimilarityResult:
    """Spearman's rho between human similarity scores and cosine similarities."""
    from scipy.stats import spearmanr

    index = _lookup(vectors, len(vectors), lowercase)
    norm = (lambda w: w.lower()) if lowercase else (lambda w: w)
    pairs = read_similarity(path)
    human, model = [], []
    for w1, w2, score in pairs:
        i, j = index.get(norm(w1)), index.get(norm(w2))
        if i is not None and j is not None:
            human.append(score)
            model.append(float(vectors.unit[i] @ vectors.unit[j]))
    rho = float(spearmanr(human, model).statistic) if len(human) > 2 else float("nan")
    return SimilarityResult(str(path), rho, len(human), len(pairs))


def eval_data_dir() -> Path:
    """``embedding_eval/`` under ``$LMLAB_SHARED_DATA`` or ``../shared/data`` of the checkout."""
    env = os.environ.get("LMLAB_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return base / "embedding_eval"


def default_sets(lang: str) -> tuple[list[Path], list[Path]]:
    """The analogy and similarity files for ``en`` or ``zh``."""
    root = eval_data_dir()
    if lang == "en":
        names = (EN_ANALOGY, EN_SIMILARITY)
    elif lang == "zh":
        names = (ZH_ANALOGY, ZH_SIMILARITY)
    else:
        raise LmlabError(f"no built-in evaluation sets for language {lang!r}; use en or zh")
    return [root / n for n in names[0]], [root / n for n in names[1]]
